"""Data quality: find what is wrong with a load table, repair what can be repaired.

The checks run in the order a forecaster needs them, because each one relies on the
previous: a spike can only be measured against neighbouring days once the series sits
on a regular grid, and a day can only be compared with its calendar once spikes and
gaps are out of the way.

1. ``schema`` — columns and dtypes (:func:`gridcast.schema.validate`).
2. ``timezone`` — every timestamp in UTC (naive ones localised with ``meta["timezone"]``).
3. ``duplicates_exact`` — identical rows: dropped.
4. ``clock_change`` — a stretch labelled in local wall time instead of UTC: a gap of
   *k* steps, then the stretch, then *k* conflicting duplicates, where *k* steps is the
   zone's UTC offset (or its DST shift) and the stretch's daily profile fits its
   neighbours best when moved back by exactly *k*. Moved back. Likewise a whole
   region in local wall time (a missing hour at every spring-forward, a repeated one
   at every fall-back): re-labelled.
5. ``duplicates_conflicting`` — same (region, timestamp), different values: resolved
   by the **median** of each column (the mean of two), and reported.
6. ``gaps`` — the regular grid per region: missing steps counted, longest gap.
7. ``temperature_unit`` — temperatures above 200 are Kelvin; a stretch is converted
   when all of it lands inside the temperature bounds once converted, else set missing.
8. ``bounds`` — physical bounds from the settings: values outside become missing.
9. ``spikes`` — robust z-score of a value against the same step of the neighbouring
   days, counted only where it stands out from both adjacent steps (a whole day at
   another level is a calendar matter, not a spike): set missing.
10. ``flatlines`` — ``flatline_min_steps`` identical consecutive loads (a stuck meter):
    all but the first set missing. (Run before the spikes: a flatline's end can look
    like one.)
11. Cleaning: short gaps (<= ``max_interpolate_steps``) interpolated linearly, longer
    ones left missing and flagged.
12. ``date_transposition`` — the day/month swap (``dd.mm`` read as ``mm.dd``), found
    from the data alone (:class:`_CalendarModel`, :func:`_transposed_pairs`): a pair
    of local dates (y-m-d, y-d-m) is flagged when the load of each fits the other's
    day type, season *and* weather far better than its own; when most pairs of a
    year lean that way, the whole year is flagged (a file read month-first). With
    ``repair_dates=True`` the pairs are swapped back, moving only the columns that
    came from the load's source file (``meta["sources"]``).
13. ``day_type`` — days whose load looks like another day type than the calendar says
    (a labelled Sunday behaving like a workday, and the reverse). Reported only.
14. ``usable`` — enough clean days (``min_history_days``) and not too much missing
    (``max_missing_fraction``), per region.

This module runs them in that order and writes the report; the checks themselves
live along the same seams: :mod:`gridcast.quality.clock` (2, 4),
:mod:`gridcast.quality.cleaning` (5-11), :mod:`gridcast.quality.calendar_model` (the calendar
model, 13), :mod:`gridcast.quality.transposition` (12), with the report's bookkeeping in
:mod:`gridcast.quality.report`.

Example:
    >>> from gridcast.synthetic import generate
    >>> from gridcast.settings import Settings
    >>> df, meta = generate(days=21, seed=3)
    >>> result = check(df, meta, settings=Settings())
    >>> result.usable, result.report["freq"], result.report["checks"]["gaps"]["count"]
    (True, '1h', 0)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridcast.schema import (
    LOAD,
    REFERENCE,
    REGION,
    TEMPERATURE,
    TIMESTAMP,
    infer_freq,
    steps_per_day,
    validate,
)
from gridcast.settings import Settings
from gridcast.quality.calendar_model import (  # noqa: F401 - re-exported: faults.py and callers use these names
    CALENDAR_MIN_TRAIN_DAYS,
    _calendar_model,
    _CalendarModel,
    _day_type,
)
from gridcast.quality.cleaning import (
    _apply_bounds,
    _dedupe,
    _flatlines,
    _interpolate,
    _kelvin,
    _spikes,
    _to_grid,
)
from gridcast.quality.clock import _fix_clock_change, _fix_wall_clock_table, _to_utc
from gridcast.quality.report import CHECKS, N_EXAMPLES, _Checks, _iso  # noqa: F401 - CHECKS re-exported
from gridcast.quality.date_shifts import block_dates, describe_shift, describe_swap, find_blocks, repair_shift, repair_swap
from gridcast.quality.transposition import MOVED, STAYED, _transposed_pairs

log = logging.getLogger(__name__)


@dataclass
class QualityResult:
    """What :func:`check` found and made of the table.

    Attributes:
        clean: the cleaned table, a regular UTC grid per region (long gaps left NaN).
        meta: the input metadata, updated (``freq``, ``quality``; ``sources`` kept).
        report: ``{"checks": {name: {count, examples, action, ...}}, "usable",
            "reasons", "freq", ...}`` — JSON-serialisable.
        usable: False when the data cannot be used to forecast.
        reasons: why not (empty when usable).
    """

    clean: pd.DataFrame
    meta: dict[str, Any]
    report: dict[str, Any]
    usable: bool
    reasons: list[str] = field(default_factory=list)


def _defective_columns(frame: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    """The columns that came from the load's source file (all, when sources are unknown or shared)."""
    sources = meta.get("sources") or {}
    src = sources.get(LOAD)
    if src is None:
        return list(frame.columns)
    return [c for c in frame.columns if sources.get(c, src) == src]


# --------------------------------------------------------------------------- main


def check(df: pd.DataFrame, meta: dict[str, Any] | None, *, settings: Settings,
          repair_dates: bool = False) -> QualityResult:
    """Check and clean a canonical table.

    Args:
        df: the table (canonical columns; timestamps UTC, or naive local with
            ``meta["timezone"]``).
        meta: its metadata (``timezone``, ``country``, ``sources`` are used if present).
        settings: bounds and thresholds (the "data quality" section).
        repair_dates: re-label day/month-transposed dates (only the load file's columns).

    Returns:
        The :class:`QualityResult`.

    Raises:
        SchemaError: a required column is missing or not numeric, or timestamps cannot
            be placed in UTC.
    """
    meta = dict(meta or {})
    checks = _Checks()
    df = _to_utc(df, meta, checks)
    df = validate(df.assign(**{TIMESTAMP: df[TIMESTAMP].astype("datetime64[ns, UTC]")}))
    checks.set_action("schema", f"columns {', '.join(map(str, df.columns))} typed")
    rows_in = len(df)
    tz = meta.get("timezone") or "UTC"
    country = meta.get("country")

    exact = df.duplicated(keep="first")
    if exact.any():
        checks.add("duplicates_exact", int(exact.sum()),
                   [{"region": r, "timestamp": _iso(t)} for r, t in df.loc[exact, [REGION, TIMESTAMP]].head(N_EXAMPLES).itertuples(index=False)],
                   action="exact copies dropped")
    df = df[~exact.to_numpy()]
    freq = infer_freq(df[TIMESTAMP])
    step = pd.Timedelta(freq)
    spd = steps_per_day(freq)

    values = [c for c in df.columns if c not in (TIMESTAMP, REGION)]
    frames: list[pd.DataFrame] = []
    per_region: dict[str, dict[str, Any]] = {}
    reasons: list[str] = []
    repaired: dict[str, dict[str, Any]] = {}
    defective = _defective_columns(df[values], meta)
    for region, part in df.groupby(REGION, sort=True):
        region = str(region)
        part = _fix_wall_clock_table(part, step=step, tz=meta.get("timezone"), checks=checks, region=region)
        part = _fix_clock_change(part, step=step, spd=spd, tz=meta.get("timezone"), checks=checks, region=region)
        frame = _dedupe(part, values, checks, region)
        frame = _to_grid(frame, step, checks, region)
        _kelvin(frame, settings, checks, region)
        _apply_bounds(frame, settings, checks, region)
        # flatlines first: a stuck meter's last value, next to the real series again,
        # would look like a spike
        _flatlines(frame, settings, checks, region)
        _spikes(frame, spd, settings, checks, region)
        filled, left, longest = _interpolate(frame, settings)
        checks.add("gaps", 0, interpolated=filled, left_missing=left, longest_missing_after_cleaning=longest)
        candidates, repaired_here = _calendar(frame, spd, tz, country, checks, region, repair_dates, defective)
        if repaired_here:
            repaired[region] = repaired_here
        n_missing = int(frame[LOAD].isna().sum())
        missing = n_missing / max(len(frame), 1)
        clean_days = (len(frame) - n_missing) / spd
        region_reasons = []
        if clean_days < settings.min_history_days:
            region_reasons.append(f"{region}: only {clean_days:.1f} clean days of load (need {settings.min_history_days})")
        if missing > settings.max_missing_fraction:
            region_reasons.append(f"{region}: {missing:.1%} of load missing (limit {settings.max_missing_fraction:.0%})")
        reasons.extend(region_reasons)
        per_region[region] = {"rows": len(frame), "start": _iso(frame.index[0]), "end": _iso(frame.index[-1]),
                              "missing_load": n_missing, "missing_fraction": round(missing, 4),
                              "clean_days": round(clean_days, 1), "transposition_candidates": candidates,
                              "usable": not region_reasons}
        frames.append(frame.reset_index().assign(**{REGION: region}))
    clean = validate(pd.concat(frames, ignore_index=True))

    gaps = checks.checks["gaps"]
    if gaps["count"] or gaps.get("left_missing") or gaps.get("interpolated"):
        gaps["action"] = (f"reindexed to a regular {freq} grid; {gaps.get('interpolated', 0)} load values in gaps of "
                          f"<= {settings.max_interpolate_steps} steps interpolated, {gaps.get('left_missing', 0)} "
                          f"left missing (flagged)")
    if gaps.get("off_grid_rows"):
        gaps["action"] = (gaps["action"] if gaps["action"] != "none" else f"reindexed to a regular {freq} grid") + (
            f"; {gaps['off_grid_rows']} rows off the grid dropped")
    usable = not reasons
    report = {
        "checks": checks.checks,
        "usable": usable,
        "reasons": reasons,
        "freq": freq,
        "timezone": tz,
        "rows_in": rows_in,
        "rows_out": len(clean),
        "regions": per_region,
        "repair_dates": repair_dates,
    }
    new_meta = {**meta, "freq": freq, "quality": {"usable": usable, "reasons": reasons,
                                                   "counts": {k: v["count"] for k, v in checks.checks.items()}}}
    if repaired:
        first = next(iter(repaired.values()))
        new_meta["date_repair"] = {"pairs": sum(r.get("pairs", 0) for r in repaired.values()),
                                   "columns": first.get("columns", defective), "by_region": repaired}
    log.info("quality check: %d rows in, %d out, usable=%s", rows_in, len(clean), usable)
    return QualityResult(clean=clean, meta=new_meta, report=report, usable=usable, reasons=reasons)



def _moved_columns(defective: list[str], weather: str | None) -> list[str]:
    """The columns a date repair moves: the load file's, less its weather when the data say it stayed."""
    if weather == STAYED:
        return [c for c in defective if c in (LOAD, REFERENCE)]
    return list(defective)


def _swap_rows(frame: pd.DataFrame, pairs: list[dict[str, Any]], spd: int, columns: list[str]) -> None:
    a = np.array([p["pos"] for p in pairs])[:, None] + np.arange(spd)
    b = np.array([p["pos_other"] for p in pairs])[:, None] + np.arange(spd)
    for col in columns:
        x = frame[col].to_numpy(dtype=float).copy()
        x[a], x[b] = x[b], x[a].copy()
        frame[col] = x


def _calendar(frame: pd.DataFrame, spd: int, tz: str, country: str | None, checks: _Checks, region: str,
              repair: bool, defective: list[str]) -> tuple[int, dict[str, Any]]:
    """The calendar checks for one region: transposition, shifted/swapped blocks, day type.

    Each later check sees the table with the earlier findings undone — on the table
    itself with ``repair``, else on a scratch copy — so a transposed date is not also
    reported as a shifted block or an odd day type.

    Returns:
        The number of candidate transposition pairs, and what was repaired.
    """
    model = _calendar_model(frame, spd, tz, country)
    if model is None:
        for name in ("date_transposition", "date_shift", "date_swap", "day_type"):
            if checks.checks[name]["action"] == "none":
                checks.set_action(name, f"skipped: fewer than {CALENDAR_MIN_TRAIN_DAYS} complete days with day > 12")
        return 0, {}
    work = frame if repair else frame.copy()
    # the weather can only have moved with the load if it came from the same file
    weather_may_move = TEMPERATURE in defective
    pairs, candidates, suspects, evidence = _transposed_pairs(model, weather_may_move)
    if suspects:
        checks.add("date_transposition", 0, suspects=suspects)
    explained: set[str] = set()
    repaired: dict[str, Any] = {}
    if pairs:
        moved = _moved_columns(defective, evidence.get("weather"))
        public = [{k: v for k, v in p.items() if not k.startswith("pos")} | {"region": region} for p in pairs]
        dates = [p["date"] for p in pairs] + [p["swapped_with"] for p in pairs]
        explained |= set(dates)
        action = (f"re-labelled: columns {', '.join(moved)} swapped back between each pair"
                  if repair else "reported; rerun with --repair-dates to re-label")
        checks.add("date_transposition", 2 * len(pairs), public, action=action,
                   pairs=len(pairs), dates=sorted(dates), weather=evidence.get("weather"),
                   columns_moved=moved)
        _swap_rows(work, pairs, spd, moved)
        if repair:
            repaired = {"pairs": len(pairs), "columns": moved}
        model = _calendar_model(work, spd, tz, country) or model
    if evidence:
        checks.add("date_transposition", 0, evidence={region: {k: v for k, v in evidence.items() if k != "weather"}})
    checks.add("date_transposition", 0, candidate_pairs=candidates)

    shifts, swaps = find_blocks(model, weather_may_move)
    for a, b in swaps:
        moved = _moved_columns(defective, STAYED if not a.weather_moved else MOVED)
        entry = describe_swap(model, a, b) | {"region": region}
        days = block_dates(model, a) + block_dates(model, b)
        explained |= set(days)
        checks.add("date_swap", len(days), [entry],
                   action=(f"swapped back: columns {', '.join(moved)}" if repair
                           else "reported; rerun with --repair-dates to swap back"),
                   blocks=[entry], dates=sorted(days))
        repair_swap(work, model, a, moved)
        if repair:
            repaired.setdefault("swaps", []).append({**entry, "columns": moved})
    lost_total = 0
    for b in shifts:
        moved = _moved_columns(defective, MOVED if b.weather_moved else STAYED)
        entry = describe_shift(model, b) | {"region": region}
        days = block_dates(model, b)
        explained |= set(days)
        lost = repair_shift(work, model, b, moved)
        lost_total += lost
        entry["days_lost"] = lost
        checks.add("date_shift", len(days), [entry],
                   action=(f"moved back: columns {', '.join(moved)}; days whose own data the file lacks "
                           "set missing" if repair else "reported; rerun with --repair-dates to move back"),
                   blocks=[entry], dates=sorted(days))
        if repair:
            repaired.setdefault("shifts", []).append({**entry, "columns": moved})
    if shifts or swaps:
        model = _calendar_model(work, spd, tz, country) or model
    odd = [o for o in _day_type(model) if o["date"] not in explained]
    if odd:
        checks.add("day_type", len(odd), [o | {"region": region} for o in odd],
                   action="reported (a holiday missing from the calendar, or mislabelled dates)",
                   dates=[o["date"] for o in odd])
    return candidates, repaired


def render_summary(report: dict[str, Any]):
    """A readable rich Table of the report: one row per check.

    Returns:
        ``rich.table.Table``; print it with a rich Console.
    """
    from rich.table import Table

    verdict = "usable" if report.get("usable") else "NOT usable: " + "; ".join(report.get("reasons", []))
    table = Table(title=f"data quality ({report.get('freq', '?')}, {report.get('rows_in', '?')} rows in, "
                        f"{report.get('rows_out', '?')} out) — {verdict}")
    table.add_column("check")
    table.add_column("count", justify="right")
    table.add_column("action")
    table.add_column("examples", overflow="fold")
    for name, entry in report.get("checks", {}).items():
        examples = entry.get("examples") or []
        shown = ", ".join(str(e.get("timestamp") or e.get("date") or e.get("from") or e) for e in examples[:3])
        style = "yellow" if entry.get("count") else None
        table.add_row(name, str(entry.get("count", 0)), str(entry.get("action", "")), shown, style=style)
    return table
