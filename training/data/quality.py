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

Example:
    >>> from training.data.synthetic import generate
    >>> from gridcast.settings import Settings
    >>> df, meta = generate(days=21, seed=3)
    >>> result = check(df, meta, settings=Settings())
    >>> result.usable, result.report["freq"], result.report["checks"]["gaps"]["count"]
    (True, '1h', 0)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridcast.errors import SchemaError
from gridcast.features import holiday_flags
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

log = logging.getLogger(__name__)

#: the report's checks, in the order they run (and are shown)
CHECKS = (
    "schema",
    "timezone",
    "duplicates_exact",
    "clock_change",
    "duplicates_conflicting",
    "gaps",
    "temperature_unit",
    "bounds",
    "spikes",
    "flatlines",
    "date_transposition",
    "day_type",
)
#: a temperature above this cannot be °C or °F on Earth: it is Kelvin
KELVIN_THRESHOLD = 200.0
KELVIN_OFFSET = 273.15
#: how many examples a check keeps in the report
N_EXAMPLES = 5
#: neighbouring days (each side) the spike and clock-change references look at
SPIKE_NEIGHBOUR_DAYS = 3
PROFILE_NEIGHBOUR_DAYS = 7
#: a clock-change stretch is tried at shifts up to this many steps beyond its own
CLOCK_SEARCH_STEPS = 2
#: longest mislabelled stretch looked for (beyond it the neighbours are mislabelled too)
MAX_CLOCK_STRETCH_DAYS = 60
#: calendar checks: the alternative must cost less than this fraction of the labelled
#: one, and beat it by more than this many typical days' cost ("far better")
CALENDAR_RATIO = 0.5
CALENDAR_MARGIN = 3.0
#: as labelled, one day of a swapped pair must look unusual: cost above this quantile
#: of the costs of the days the model was fitted on
CALENDAR_UNUSUAL_QUANTILE = 0.9
#: a year in which this share of the candidate pairs favours the swap is transposed as a
#: whole (a file read month-first), and all its pairs are re-labelled
SYSTEMATIC_SHARE = 0.75
SYSTEMATIC_MIN_PAIRS = 5
#: individually flagged pairs count only when a year holds at least this many
CLUSTER_MIN_PAIRS = 3
#: residuals beyond this many robust SDs count no more (one odd hour cannot decide a day)
CALENDAR_CLIP_Z = 4.0
#: knots of the piecewise-linear temperature response, as quantiles of daily means
#: (the tails matter: heating and cooling start in the coldest and hottest tenth)
TEMPERATURE_KNOTS = (0.05, 0.15, 0.35, 0.65, 0.85, 0.95)
#: the temperature response is extended this far (°C) beyond the fitted range, then flat
TEMPERATURE_EXTRAPOLATE_C = 3.0
#: complete, correctly labelled (day > 12) days needed to fit the calendar model
CALENDAR_MIN_TRAIN_DAYS = 56


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


class _Checks:
    """Accumulates per-check counts, examples and actions across regions."""

    def __init__(self) -> None:
        self.checks: dict[str, dict[str, Any]] = {
            name: {"count": 0, "examples": [], "action": "none"} for name in CHECKS
        }

    def add(self, name: str, count: int, examples: Sequence[dict[str, Any]] = (), action: str | None = None,
            **details: Any) -> None:
        entry = self.checks[name]
        entry["count"] += int(count)
        room = N_EXAMPLES - len(entry["examples"])
        if room > 0:
            entry["examples"].extend(list(examples)[:room])
        if action is not None and count:
            entry["action"] = action
        for key, value in details.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key in entry:
                entry[key] = max(entry[key], value) if key.startswith("longest") else entry[key] + value
            elif isinstance(value, list) and key in entry:
                entry[key].extend(value)
            else:
                entry[key] = value

    def set_action(self, name: str, action: str) -> None:
        self.checks[name]["action"] = action


def _iso(ts: Any) -> str:
    return pd.Timestamp(ts).isoformat()


def _num(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 3)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the True runs of a boolean array.

    Example:
        >>> _runs(np.array([0, 1, 1, 0, 1], dtype=bool))
        (array([1, 4]), array([2, 1]))
    """
    m = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
    d = np.diff(m.astype(np.int8))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return starts, ends - starts


def _shifted_stack(x: np.ndarray, shifts: list[int]) -> np.ndarray:
    """Rows ``x[t + s]`` for each shift (NaN outside the array)."""
    n = len(x)
    out = np.full((len(shifts), n), np.nan)
    for i, s in enumerate(shifts):
        if abs(s) >= n:
            continue
        if s >= 0:
            out[i, : n - s] = x[s:]
        else:
            out[i, -s:] = x[: n + s]
    return out


def _nanmedian_rows(stack: np.ndarray) -> np.ndarray:
    """Column-wise median ignoring NaN, without the all-NaN RuntimeWarning."""
    filled = np.sort(np.where(np.isnan(stack), np.inf, stack), axis=0)
    n = (~np.isnan(stack)).sum(axis=0)
    out = np.full(stack.shape[1], np.nan)
    ok = n > 0
    cols = np.flatnonzero(ok)
    lo = filled[(n[ok] - 1) // 2, cols]
    hi = filled[n[ok] // 2, cols]
    out[ok] = (lo + hi) / 2
    return out


def _same_step_reference(x: np.ndarray, spd: int, days: int) -> np.ndarray:
    """Median of the same step of day on ``days`` neighbouring days each side."""
    shifts = [j * spd for j in range(1, days + 1)] + [-j * spd for j in range(1, days + 1)]
    return _nanmedian_rows(_shifted_stack(x, shifts))


# --------------------------------------------------------------------------- timestamps


def _to_utc(df: pd.DataFrame, meta: dict[str, Any], checks: _Checks) -> pd.DataFrame:
    """Make the timestamp column UTC; naive local wall times need ``meta['timezone']``."""
    if TIMESTAMP not in df.columns:
        validate(df)  # raises the schema error that lists the columns
    ts = df[TIMESTAMP]
    if not pd.api.types.is_datetime64_any_dtype(ts):
        try:
            ts = pd.to_datetime(ts, utc=False, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise SchemaError(f"timestamp column is not parseable as dates: {exc}", field=TIMESTAMP) from None
    tz = meta.get("timezone")
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        source_tz = str(ts.dt.tz)
        action = "already UTC" if source_tz == "UTC" else f"converted from {source_tz} to UTC"
        checks.add("timezone", 0 if source_tz == "UTC" else len(ts), action=action)
        checks.set_action("timezone", action)
        df = df.assign(**{TIMESTAMP: ts.dt.tz_convert("UTC")})
    else:
        if not tz:
            raise SchemaError(
                "timestamps have no time zone and meta has no 'timezone'; import with --tz", field=TIMESTAMP
            )
        local = ts.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        bad = local.isna() & ts.notna()
        action = f"localised naive wall times in {tz}, converted to UTC; {int(bad.sum())} ambiguous/non-existent dropped"
        checks.add("timezone", len(ts), [{"timestamp": str(t)} for t in ts[bad].head(N_EXAMPLES)], action=action)
        checks.set_action("timezone", action)
        df = df.assign(**{TIMESTAMP: local.dt.tz_convert("UTC")})[~bad.to_numpy()]
    return df


def _fix_wall_clock_table(part: pd.DataFrame, *, step: pd.Timedelta, tz: str | None, checks: _Checks,
                          region: str) -> pd.DataFrame:
    """A whole region written in local wall time but labelled UTC: re-label it.

    The signature is exact: the labels miss the wall-clock hour that does not exist
    when clocks spring forward and repeat the hour that happens twice when they fall
    back. Every transition in range must show it, and at least one fall-back (a lone
    gap at 02:00 could be chance). Repeated labels are resolved by file order: the
    first is the summer-time hour.
    """
    if not tz or len(part) < 2:
        return part
    labels = pd.DatetimeIndex(part[TIMESTAMP]).tz_localize(None)
    probe = pd.date_range(labels.min().floor("D") - pd.Timedelta("1D"), labels.max().ceil("D"), freq="1h", tz="UTC")
    local = probe.tz_convert(tz)
    offset = (local.tz_localize(None) - probe.tz_localize(None)).to_numpy()
    changes = np.flatnonzero(offset[1:] != offset[:-1]) + 1
    if not len(changes):
        return part
    counts = pd.Series(labels).value_counts()
    falls = 0
    transitions = []
    for i in changes:
        at = probe[i].tz_localize(None)
        old, new = pd.Timedelta(offset[i - 1]), pd.Timedelta(offset[i])
        wall = pd.date_range(at + min(old, new), at + max(old, new), freq=step, inclusive="left")
        if wall[0] < labels.min() or wall[-1] > labels.max():
            continue
        seen = counts.reindex(wall, fill_value=0)
        if new > old and (seen == 0).all():
            transitions.append(("spring forward: missing", wall[0]))
        elif new < old and (seen >= 2).all():
            transitions.append(("fall back: repeated", wall[0]))
            falls += 1
        else:
            return part
    if not falls:
        return part
    first = ~pd.Series(labels).duplicated(keep="first").to_numpy()
    utc = labels.tz_localize(tz, ambiguous=first, nonexistent="NaT").tz_convert("UTC")
    if utc.isna().any():
        return part
    checks.add(
        "clock_change", len(part),
        [{"region": region, "timestamp": _iso(w), "note": f"{what} wall-clock hour"} for what, w in transitions],
        action="stretches labelled in local wall time moved back to UTC",
        whole_table_in_local_time=True,
    )
    return part.assign(**{TIMESTAMP: utc.astype("datetime64[ns, UTC]")})


def _fix_clock_change(part: pd.DataFrame, *, step: pd.Timedelta, spd: int, tz: str | None,
                      checks: _Checks, region: str) -> pd.DataFrame:
    """Find stretches labelled in local wall time (gap k, stretch, k duplicates) and move them back.

    ``part`` is one region's rows in file order, exact duplicates already dropped. In
    the overlap the stretch's row is the first in file order (a recorder writes in time
    order), so the later copy is the correctly labelled one.
    """
    ts = part[TIMESTAMP].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    t0 = ts.min()
    pos = (ts - t0) // step.value
    if np.any((ts - t0) % step.value):
        return part  # off-grid rows: the gap check reports them; no clock pattern to trust
    n = int(pos.max()) + 1
    counts = np.bincount(pos, minlength=n)
    gap_starts, gap_lens = _runs(counts == 0)
    dup_starts, dup_lens = _runs(counts >= 2)
    if not len(gap_starts) or not len(dup_starts):
        return part
    allowed = _allowed_shifts(pd.Timestamp(t0, tz="UTC"), pd.Timestamp(ts.max(), tz="UTC"), step, tz)
    first = ~pd.Series(pos).duplicated(keep="first").to_numpy()
    load = np.full(n, np.nan)
    load[pos[first]] = part[LOAD].to_numpy(dtype=float)[first]
    reference: np.ndarray | None = None
    new_pos = pos.copy()
    used_dups: set[int] = set()
    for g0, k in zip(gap_starts, gap_lens, strict=True):
        if k not in allowed:
            continue
        for d0, dk in zip(dup_starts, dup_lens, strict=True):
            if dk != k or d0 < g0 + k or d0 in used_dups or (d0 - g0) > MAX_CLOCK_STRETCH_DAYS * spd:
                continue
            if reference is None:
                reference = _same_step_reference(load, spd, PROFILE_NEIGHBOUR_DAYS)
            stretch = np.arange(g0 + k, d0 + k)
            # the shift that best aligns the stretch with its neighbours' profile must
            # be the one the timestamps suggest, give or take a quarter (sub-hourly
            # noise); a coincidental gap and duplicate of equal length align best unshifted
            # (searched between "as labelled" and the suggested shift only: a daily
            # profile repeats every day, so shifts a day apart are aliases)
            shifts = np.arange(-CLOCK_SEARCH_STEPS, k + CLOCK_SEARCH_STEPS + 1)
            errors = [np.nanmean(np.abs(load[stretch] - reference[np.clip(stretch - j, 0, n - 1)])) for j in shifts]
            if abs(shifts[int(np.nanargmin(errors))] - k) <= k // 4:
                break
        else:
            continue
        rows = ((pos >= g0 + k) & (pos < d0)) | ((pos >= d0) & (pos < d0 + k) & first)
        new_pos[rows] -= k
        used_dups.add(d0)
        shift = step * int(k)
        checks.add(
            "clock_change",
            int(rows.sum()),
            [{"region": region, "from": _iso(pd.Timestamp(t0 + (g0 + k) * step.value, tz="UTC")),
              "to": _iso(pd.Timestamp(t0 + (d0 + k - 1) * step.value, tz="UTC")), "shift": str(shift)}],
            action="stretches labelled in local wall time moved back to UTC",
            stretches=1,
        )
    if (new_pos == pos).all():
        return part
    new_ts = pd.to_datetime(t0 + new_pos * step.value, utc=True).astype("datetime64[ns, UTC]")
    return part.assign(**{TIMESTAMP: new_ts})


def _allowed_shifts(start: pd.Timestamp, end: pd.Timestamp, step: pd.Timedelta, tz: str | None) -> set[int]:
    """Shifts (in steps) a local-wall-time mislabelling can produce: the UTC offsets and DST delta."""
    hour = pd.Timedelta("1h")
    if not tz:
        shifts = [hour * h for h in range(1, 15)]
    else:
        probe = pd.date_range(start, end, periods=min(400, max(2, int((end - start) / pd.Timedelta("1D")) + 1)))
        offsets = {abs(t.utcoffset()) for t in probe.tz_convert(tz)}
        shifts = [o for o in offsets if o > pd.Timedelta(0)]
        if len(offsets) > 1:
            shifts.append(hour)
    return {int(s / step) for s in shifts if s % step == pd.Timedelta(0)}


# --------------------------------------------------------------------------- values


def _kelvin(frame: pd.DataFrame, settings: Settings, checks: _Checks, region: str) -> None:
    """Convert stretches of Kelvin temperatures in place (or blank them when implausible)."""
    if TEMPERATURE not in frame:
        return
    t = frame[TEMPERATURE].to_numpy(dtype=float).copy()
    starts, lens = _runs(t > KELVIN_THRESHOLD)
    converted = blanked = 0
    examples = []
    for s, n in zip(starts, lens, strict=True):
        stretch = t[s:s + n] - KELVIN_OFFSET
        if np.all((stretch >= settings.temperature_min_c) & (stretch <= settings.temperature_max_c)):
            t[s:s + n] = stretch
            converted += n
        else:
            t[s:s + n] = np.nan
            blanked += n
        examples.append({"region": region, "from": _iso(frame.index[s]), "to": _iso(frame.index[s + n - 1]),
                         "steps": int(n), "first_value": _num(t[s] + KELVIN_OFFSET if t[s] == t[s] else np.nan)})
    if len(starts):
        frame[TEMPERATURE] = t
        checks.add("temperature_unit", int(lens.sum()), examples,
                   action="Kelvin stretches converted to °C (implausible ones set missing)",
                   stretches=len(starts), converted=converted, set_missing=blanked)


def _bounds(settings: Settings) -> dict[str, tuple[float, float]]:
    """Physical bounds per column, from the settings."""
    return {
        LOAD: (settings.load_min_mw, settings.load_max_mw),
        REFERENCE: (settings.load_min_mw, settings.load_max_mw),
        TEMPERATURE: (settings.temperature_min_c, settings.temperature_max_c),
        "humidity_pct": (settings.humidity_min_pct, settings.humidity_max_pct),
        "cloud_cover_pct": (0.0, 100.0),
        "wind_speed_ms": (0.0, settings.wind_max_ms),
        "shortwave_wm2": (0.0, 1500.0),
        "pressure_hpa": (settings.pressure_min_hpa, settings.pressure_max_hpa),
    }


def _apply_bounds(frame: pd.DataFrame, settings: Settings, checks: _Checks, region: str) -> None:
    for col, (lo, hi) in _bounds(settings).items():
        if col not in frame:
            continue
        x = frame[col].to_numpy(dtype=float).copy()
        bad = (x < lo) | (x > hi)
        if bad.any():
            idx = np.flatnonzero(bad)
            checks.add("bounds", int(bad.sum()),
                       [{"region": region, "timestamp": _iso(frame.index[i]), "column": col, "value": _num(x[i])}
                        for i in idx[:N_EXAMPLES]],
                       action="out-of-bounds values set missing")
            checks.checks["bounds"].setdefault("by_column", {})
            by = checks.checks["bounds"]["by_column"]
            by[col] = by.get(col, 0) + int(bad.sum())
            x[bad] = np.nan
            frame[col] = x


def _fill(x: np.ndarray) -> np.ndarray:
    """``x`` with NaN filled by linear interpolation (ends held flat)."""
    good = np.isfinite(x)
    if good.all() or not good.any():
        return x
    out = x.copy()
    out[~good] = np.interp(np.flatnonzero(~good), np.flatnonzero(good), x[good])
    return out


def _spike_z(x: np.ndarray, basis: np.ndarray, spd: int) -> tuple[np.ndarray, np.ndarray]:
    """Robust z of each value against the same step on neighbouring days of ``basis``.

    The relative residual counts only where it stands out from *both* adjacent steps:
    a whole day at another level (a holiday, a swapped date) is not a spike. (A spike
    right next to the start of such a day can make that first step look like one too.)
    """
    ref = _same_step_reference(basis, spd, SPIKE_NEIGHBOUR_DAYS)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(ref > 0, (x - ref) / ref, np.nan)
    left = r - np.concatenate(([np.nan], r[:-1]))
    right = r - np.concatenate((r[1:], [np.nan]))
    same_side = np.sign(left) == np.sign(right)
    d = np.where(same_side, np.sign(left) * np.minimum(np.abs(left), np.abs(right)), 0.0)
    d[np.isnan(left) | np.isnan(right)] = np.nan
    # the scale of step-to-step changes of the residual: what an ordinary step does
    steps = left[np.isfinite(left)]
    scale = 1.4826 * np.median(np.abs(steps - np.median(steps))) if len(steps) >= 2 * spd else 0.0
    if not scale > 0:
        return np.full(len(x), np.nan), ref
    return d / scale, ref


def _spikes(frame: pd.DataFrame, spd: int, settings: Settings, checks: _Checks, region: str) -> None:
    """Isolated load values far from the same step on neighbouring days: set missing.

    Two passes. The reference is a median over neighbouring days, and a median moves
    when one of its members is missing or is itself a spike — next to a holiday week,
    enough to make an ordinary neighbour look like a spike. So the second pass scores
    every value against neighbours with the gaps and the first pass's spikes
    interpolated over.
    """
    x = frame[LOAD].to_numpy(dtype=float).copy()
    with np.errstate(invalid="ignore"):
        z, _ = _spike_z(x, _fill(x), spd)
        first = np.abs(z) > settings.spike_z
        z, ref = _spike_z(x, _fill(np.where(first, np.nan, x)), spd)
        bad = np.abs(z) > settings.spike_z
    if bad.any():
        idx = np.flatnonzero(bad)
        checks.add("spikes", len(idx),
                   [{"region": region, "timestamp": _iso(frame.index[i]), "value": _num(x[i]),
                     "expected": _num(ref[i]), "z": _num(z[i])} for i in idx[:N_EXAMPLES]],
                   action=f"load values with robust |z| > {settings.spike_z:g} set missing")
        x[bad] = np.nan
        frame[LOAD] = x


def _flatlines(frame: pd.DataFrame, settings: Settings, checks: _Checks, region: str) -> None:
    """Runs of identical loads (a stuck meter): keep the first value, blank the rest."""
    x = frame[LOAD].to_numpy(dtype=float).copy()
    same = np.concatenate(([False], (x[1:] == x[:-1]) & ~np.isnan(x[1:])))
    starts, lens = _runs(same)  # runs of "equal to the previous": a flatline of n values has n-1
    keep = lens + 1 >= settings.flatline_min_steps
    if keep.any():
        for s, n in zip(starts[keep], lens[keep], strict=True):
            x[s:s + n] = np.nan
        checks.add("flatlines", int(keep.sum()),
                   [{"region": region, "from": _iso(frame.index[s - 1]), "steps": int(n + 1),
                     "value": _num(frame[LOAD].iloc[s - 1])} for s, n in zip(starts[keep], lens[keep], strict=True)],
                   action="all but the first value of each flatline set missing",
                   steps=int((lens[keep] + 1).sum()))
        frame[LOAD] = x


def _interpolate(frame: pd.DataFrame, settings: Settings) -> tuple[int, int, int]:
    """Interpolate NaN runs of at most ``max_interpolate_steps``; return (filled, left, longest load run)."""
    filled = left = 0
    longest = 0
    limit = settings.max_interpolate_steps
    for col in frame.columns:
        x = frame[col].to_numpy(dtype=float)
        nan = np.isnan(x)
        if not nan.any() or nan.all():
            if col == LOAD and nan.all():
                longest = len(x)
            continue
        starts, lens = _runs(nan)
        short = np.zeros(len(x), dtype=bool)
        for s, n in zip(starts, lens, strict=True):
            inside = s > 0 and s + n < len(x)
            if n <= limit and inside:
                short[s:s + n] = True
        if short.any():
            good = ~nan
            y = x.copy()
            y[short] = np.interp(np.flatnonzero(short), np.flatnonzero(good), x[good])
            frame[col] = y
        if col == LOAD:
            filled += int(short.sum())
            left += int(nan.sum() - short.sum())
            longest = max(longest, int(lens[~np.isin(starts, np.flatnonzero(short))].max(initial=0)))
    return filled, left, longest


# --------------------------------------------------------------------------- calendar


@dataclass
class _Days:
    """One region's complete local days (all their steps on the grid) and their context.

    ``dates``/``starts`` cover every local day with exactly one day's steps (clock-change
    days have more or fewer and are left out); ``ok`` marks those whose load is fully
    present, the only ones the calendar model scores.
    """

    dates: pd.DatetimeIndex  # local calendar dates (naive)
    starts: np.ndarray  # grid position of each day's first step
    ok: np.ndarray  # the day's load is complete and positive
    load: np.ndarray  # log load, days × spd (ok days only are finite)
    temp: np.ndarray | None  # °C, days × spd, gaps filled with the day's mean


def _complete_days(frame: pd.DataFrame, spd: int, tz: str) -> _Days | None:
    local = frame.index.tz_convert(tz)
    dates = local.normalize().tz_localize(None)
    codes, uniques = pd.factorize(dates)
    counts = np.bincount(codes)
    first = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
    starts = first[counts[codes[first]] == spd]
    if not len(starts):
        return None
    grid = starts[:, None] + np.arange(spd)
    with np.errstate(invalid="ignore", divide="ignore"):
        load = np.log(frame[LOAD].to_numpy(dtype=float)[grid])
    ok = np.isfinite(load).all(axis=1)
    temp = None
    if TEMPERATURE in frame and frame[TEMPERATURE].notna().any():
        t = frame[TEMPERATURE].to_numpy(dtype=float)[grid]
        fill = float(np.nanmean(frame[TEMPERATURE].to_numpy(dtype=float)))
        known = ~np.isnan(t)
        row_mean = np.where(known.any(axis=1), np.where(known, t, 0).sum(axis=1) / np.maximum(known.sum(axis=1), 1), fill)
        temp = np.where(known, t, row_mean[:, None])
    return _Days(dates=pd.DatetimeIndex(uniques[codes[starts]]), starts=starts, ok=ok, load=load, temp=temp)


class _CalendarModel:
    """Expected log-load profile of a day from its calendar and its weather.

    One least-squares regression per step of day on: day type (weekday one-hot, a
    public holiday counted as a Sunday — the usual grid behaviour, and a holiday
    effect cannot be learned from the few holidays in a year), up to three annual
    harmonics (fewer for tables shorter than a year),
    a linear trend, and a piecewise-linear response to the day's mean temperature and
    to the step's temperature (knots at quantiles of daily means, tails included).

    It is fitted **only on days with day-of-month > 12** that are not public
    holidays: those can never be part of a day/month transposition, so the model is
    clean even when a whole file is transposed. A day's cost under a context is the
    mean squared robust z of its residuals, clipped, so one odd hour cannot decide.
    """

    def __init__(self, days: _Days, country: str | None) -> None:
        self.days = days
        d = days.dates
        self.t0 = d[0]
        self.holiday = holiday_flags(d, country) > 0
        self.calendar = self._calendar(d, self.holiday)
        # holidays stay out of the fit: counted as Sundays for scoring, but their depth
        # varies too much (Tết, Christmas) to let them bend the model
        train = (d.day > 12) & days.ok & ~self.holiday
        self.knots = None
        if days.temp is not None:
            fit_temp = days.temp[train]
            self.knots = np.quantile(fit_temp.mean(axis=1), TEMPERATURE_KNOTS)
            # a little beyond the fitted range the response is held flat: a straight
            # line extrapolated far into an unseen cold spell invents loads
            m = TEMPERATURE_EXTRAPOLATE_C
            self.daily_range = (fit_temp.mean(axis=1).min() - m, fit_temp.mean(axis=1).max() + m)
            self.step_range = (fit_temp.min() - m, fit_temp.max() + m)
        every = np.arange(len(d))
        x = self.design(every, every)
        self._fit(x, train)
        own = self.cost(every, every, every)
        #: a day costing more than this is unusual even under its own calendar
        self.unusual = float(np.quantile(own[train], CALENDAR_UNUSUAL_QUANTILE))
        #: what an ordinary day costs (the unusual tail left out)
        self.typical = float(np.median(own[train & (own <= self.unusual)]))
        self.own = own
        self.n_train = int(train.sum())

    def _fit(self, x: np.ndarray, train: np.ndarray) -> None:
        spd = self.days.load.shape[1]
        y = self.days.load
        self.beta = np.stack([np.linalg.lstsq(x[train, s], y[train, s], rcond=None)[0] for s in range(spd)])
        resid = y[train] - self._predict(x[train])
        med = np.median(resid, axis=0)
        self.sigma = np.maximum(1.4826 * np.median(np.abs(resid - med), axis=0), 1e-6)

    def _calendar(self, d: pd.DatetimeIndex, holiday: np.ndarray) -> np.ndarray:
        day_type = np.where(holiday, 6, d.day_of_week.to_numpy())
        weekday = np.eye(7)[day_type]
        doy = d.day_of_year.to_numpy() / 365.25
        # annual harmonics only as far as the span can pin them down (a 4-month table
        # would extrapolate them wildly into its own unseen weeks)
        span_years = (d[-1] - d[0]).days / 365.25
        harmonics = 3 if span_years >= 0.9 else 1 if span_years >= 0.5 else 0
        fourier = [f(2 * np.pi * k * doy) for k in range(1, harmonics + 1) for f in (np.sin, np.cos)]
        trend = (d - self.t0).days.to_numpy() / 365.25
        return np.column_stack([weekday, *fourier, trend])

    def _hinge(self, t: np.ndarray) -> np.ndarray:
        return np.stack([t, *[np.maximum(0.0, t - k) for k in self.knots]], axis=-1)

    def design(self, calendar_of: np.ndarray, weather_of: np.ndarray, calendar: np.ndarray | None = None) -> np.ndarray:
        """Design tensor (days × steps × features): calendar of one day, weather of another."""
        cal = (self.calendar if calendar is None else calendar)[calendar_of]
        spd = self.days.load.shape[1]
        parts = [np.repeat(cal[:, None, :], spd, axis=1)]
        if self.knots is not None:
            temp = self.days.temp[weather_of]
            daily = self._hinge(np.clip(temp.mean(axis=1), *self.daily_range))
            parts += [np.repeat(daily[:, None, :], spd, axis=1), self._hinge(np.clip(temp, *self.step_range))]
        return np.concatenate(parts, axis=-1)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return np.einsum("dsf,sf->ds", x, self.beta)

    def cost(self, load_of: np.ndarray, calendar_of: np.ndarray, weather_of: np.ndarray,
             calendar: np.ndarray | None = None) -> np.ndarray:
        """Cost of the load of days ``load_of`` under the calendar/weather of other days."""
        pred = self._predict(self.design(calendar_of, weather_of, calendar))
        z = (self.days.load[load_of] - pred) / self.sigma
        return np.mean(np.minimum(z**2, CALENDAR_CLIP_Z**2), axis=1)


def _calendar_model(frame: pd.DataFrame, spd: int, tz: str, country: str | None) -> _CalendarModel | None:
    days = _complete_days(frame, spd, tz)
    if days is None or int(((days.dates.day > 12) & days.ok).sum()) < CALENDAR_MIN_TRAIN_DAYS:
        return None
    return _CalendarModel(days, country)


def _transposed_pairs(model: _CalendarModel, weather_moves: bool) -> tuple[list[dict[str, Any]], int, list[str]]:
    """Pairs of local dates (y-m-d, y-d-m) whose loads belong to each other's date.

    Two kinds of evidence, because the defect comes in two shapes:

    * **individual** — as labelled, at least one of the two days looks unusual; both
      loads fit the other date's calendar and weather better, the pair's cost drops
      below ``CALENDAR_RATIO`` of the labelled one by more than ``CALENDAR_MARGIN``
      typical days. Such pairs are flagged only when a year holds at least
      ``CLUSTER_MIN_PAIRS`` of them (a lone pair is reported as a suspect);
    * **systematic** — a file whose ``dd.mm`` dates were read month-first transposes
      every such pair. When, in one year, at least ``SYSTEMATIC_SHARE`` of the pairs
      favour the swap (correctly labelled data: a few percent) and some of them are
      individually flagged, all of that year's
      pairs are flagged, including the few whose days are too alike, or too
      incomplete, to tell on their own.

    Args:
        model: the fitted calendar model.
        weather_moves: True when the temperature came from the same file as the load
            (then it moves with the load, and sits at the load's label).

    Returns:
        The flagged pairs, the number of candidate pairs, and lone suspect pairs.
    """
    days = model.days
    dates = days.dates
    where = {d: i for i, d in enumerate(dates)}
    pairs = [
        (i, where[other])
        for i, d in enumerate(dates)
        if d.day <= 12 and d.month < d.day  # each pair once: (y, m, d) with m < d <= 12
        and (other := pd.Timestamp(year=d.year, month=d.day, day=d.month)) in where
    ]
    if not pairs:
        return [], 0, []
    a_all, b_all = np.array(pairs).T
    scored = days.ok[a_all] & days.ok[b_all]
    a, b = a_all[scored], b_all[scored]
    own_a, own_b = model.own[a], model.own[b]
    # Hypothesis "swapped": a's load belongs to b's date. Its weather is b's weather,
    # which sits at b's label unless the weather moved with the load (then at a's).
    swap_a = model.cost(a, b, a if weather_moves else b)
    swap_b = model.cost(b, a, b if weather_moves else a)
    labelled, swapped = own_a + own_b, swap_a + swap_b
    individual = (
        (swap_a < own_a)
        & (swap_b < own_b)
        & (swapped < CALENDAR_RATIO * labelled)
        & (labelled - swapped > CALENDAR_MARGIN * model.typical)
        & (np.maximum(own_a, own_b) > model.unusual)
    )
    flagged = np.zeros(len(a_all), dtype=bool)
    flagged[np.flatnonzero(scored)[individual]] = True
    evidence = np.full(len(a_all), "individual", dtype=object)
    years_all = dates[a_all].year.to_numpy()
    years = years_all[scored]
    suspects = []
    for year in np.unique(years_all):
        in_year = years == year
        strong = int((flagged & (years_all == year)).sum())
        if (in_year.sum() >= SYSTEMATIC_MIN_PAIRS and strong >= CLUSTER_MIN_PAIRS
                and (swapped[in_year] < labelled[in_year]).mean() >= SYSTEMATIC_SHARE):
            new = (years_all == year) & ~flagged
            evidence[new] = "systematic"
            flagged |= years_all == year
        elif 0 < (lone := flagged & (years_all == year)).sum() < CLUSTER_MIN_PAIRS:
            # a swap comes from how a file was parsed and hits many dates; a lone pair
            # is more likely two odd days (an unlisted holiday and a Saturday)
            suspects += [f"{dates[i].date()}<->{dates[j].date()}" for i, j in zip(a_all[lone], b_all[lone], strict=True)]
            flagged &= ~lone
    cost_l = np.full(len(a_all), np.nan)
    cost_s = np.full(len(a_all), np.nan)
    cost_l[scored], cost_s[scored] = labelled, swapped
    return [
        {"date": dates[i].date().isoformat(), "swapped_with": dates[j].date().isoformat(),
         "evidence": evidence[k], "cost_labelled": _num(cost_l[k]), "cost_swapped": _num(cost_s[k]),
         "pos": int(days.starts[i]), "pos_other": int(days.starts[j])}
        for k, (i, j) in enumerate(zip(a_all, b_all, strict=True)) if flagged[k]
    ], int(len(a_all)), suspects


def _day_type(model: _CalendarModel) -> list[dict[str, Any]]:
    """Labelled Sundays/holidays that behave like workdays, and workdays that behave like Sundays."""
    d = model.days.dates
    holiday = model.holiday
    weekday = d.day_of_week.to_numpy()
    sunday_like = (weekday == 6) | holiday
    workday = (weekday < 5) & ~holiday
    alt = model.calendar.copy()
    alt[:, :7] = 0.0
    alt[workday, 6] = 1.0  # a workday under a Sunday's calendar
    alt[sunday_like, 2] = 1.0  # a Sunday/holiday under a Wednesday's calendar
    idx = np.flatnonzero((workday | sunday_like) & model.days.ok)
    own = model.own[idx]
    other = model.cost(idx, idx, idx, calendar=alt)
    flag = (other < CALENDAR_RATIO * own) & (own - other > CALENDAR_MARGIN * model.typical)
    return [
        {"date": d[i].date().isoformat(), "labelled": "sunday/holiday" if sunday_like[i] else "workday",
         "behaves_like": "workday" if sunday_like[i] else "sunday", "cost_labelled": round(float(o), 3),
         "cost_other": round(float(c), 3)}
        for i, o, c in zip(idx[flag], own[flag], other[flag], strict=True)
    ]


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
    repaired: list[dict[str, Any]] = []
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
        _, candidates, swapped_here = _calendar(frame, spd, tz, country, checks, region, repair_dates,
                                                     defective, meta)
        repaired.extend(swapped_here)
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
        new_meta["date_repair"] = {"pairs": len(repaired), "columns": defective}
    log.info("quality check: %d rows in, %d out, usable=%s", rows_in, len(clean), usable)
    return QualityResult(clean=clean, meta=new_meta, report=report, usable=usable, reasons=reasons)


def _dedupe(part: pd.DataFrame, values: list[str], checks: _Checks, region: str) -> pd.DataFrame:
    """One row per timestamp; conflicting duplicates resolved by the median of each column."""
    dup = part.duplicated(subset=[TIMESTAMP], keep=False).to_numpy()
    if not dup.any():
        return part.set_index(TIMESTAMP)[values]
    conflicted = part[dup]
    resolved = conflicted.groupby(TIMESTAMP)[values].median()
    n = len(resolved)
    examples = [
        {"region": region, "timestamp": _iso(t), "load_values": [_num(v) for v in g[LOAD]]}
        for t, g in list(conflicted.groupby(TIMESTAMP))[:N_EXAMPLES]
    ]
    checks.add("duplicates_conflicting", n, examples,
               action="resolved by the median of each column (the mean of two copies)",
               rows=int(dup.sum()))
    single = part[~dup].set_index(TIMESTAMP)[values]
    return pd.concat([single, resolved]).sort_index()


def _to_grid(frame: pd.DataFrame, step: pd.Timedelta, checks: _Checks, region: str) -> pd.DataFrame:
    """Reindex one region to its regular grid; count missing steps (absent or NaN load)."""
    idx = frame.index
    t0 = idx[0]
    off = (idx - t0) % step != pd.Timedelta(0)
    if off.any():
        checks.add("gaps", 0, [{"region": region, "timestamp": _iso(t), "note": "off the grid"} for t in idx[off][:2]],
                   off_grid_rows=int(off.sum()))
        frame = frame[~off]
    grid = pd.date_range(t0, frame.index[-1], freq=step, name=TIMESTAMP)
    absent = ~grid.isin(frame.index)
    out = frame.reindex(grid)
    missing = out[LOAD].isna().to_numpy()
    starts, lens = _runs(missing)
    if len(starts):
        order = np.argsort(-lens)[:N_EXAMPLES]
        checks.add("gaps", int(missing.sum()),
                   [{"region": region, "from": _iso(grid[starts[i]]), "steps": int(lens[i])} for i in order],
                   action="reindexed to the regular grid",
                   absent_rows=int(absent.sum()), missing_values=int((missing & ~absent).sum()),
                   runs=len(starts), longest_gap_steps=int(lens.max()))
    return out


def _calendar(frame: pd.DataFrame, spd: int, tz: str, country: str | None, checks: _Checks, region: str,
              repair: bool, defective: list[str], meta: dict[str, Any]) -> tuple[list, int, list]:
    """Day/month transposition (and its repair), then day-type consistency, for one region."""
    model = _calendar_model(frame, spd, tz, country)
    if model is None:
        for name in ("date_transposition", "day_type"):
            if checks.checks[name]["action"] == "none":
                checks.set_action(name, f"skipped: fewer than {CALENDAR_MIN_TRAIN_DAYS} complete days with day > 12")
        return [], 0, []
    sources = meta.get("sources") or {}
    weather_moves = TEMPERATURE in defective and LOAD in sources and TEMPERATURE in sources
    weather_moves = weather_moves or not sources
    pairs, candidates, suspects = _transposed_pairs(model, weather_moves)
    if suspects:
        checks.add("date_transposition", 0, suspects=suspects)
    public = [{k: v for k, v in p.items() if not k.startswith("pos")} | {"region": region} for p in pairs]
    dates = [p["date"] for p in pairs] + [p["swapped_with"] for p in pairs]
    swapped = []
    if pairs:
        action = (f"re-labelled: columns {', '.join(defective)} swapped back between each pair"
                  if repair else "reported; rerun with --repair-dates to re-label")
        checks.add("date_transposition", 2 * len(pairs), public, action=action,
                   pairs=len(pairs), dates=sorted(dates))
        if repair:
            a = np.array([p["pos"] for p in pairs])[:, None] + np.arange(spd)
            b = np.array([p["pos_other"] for p in pairs])[:, None] + np.arange(spd)
            for col in defective:
                x = frame[col].to_numpy(dtype=float).copy()
                x[a], x[b] = x[b], x[a].copy()
                frame[col] = x
            swapped = pairs
            model = _calendar_model(frame, spd, tz, country) or model
    checks.add("date_transposition", 0, candidate_pairs=candidates)
    odd = _day_type(model)
    if odd:
        checks.add("day_type", len(odd), [o | {"region": region} for o in odd],
                   action="reported (a holiday missing from the calendar, or mislabelled dates)",
                   dates=[o["date"] for o in odd])
    return pairs, candidates, swapped


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
