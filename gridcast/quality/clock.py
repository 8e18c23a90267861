"""Clock checks: timestamps into UTC, and stretches labelled in local wall time moved back.

Owns the ``timezone`` and ``clock_change`` checks of :mod:`gridcast.quality.checks`: naive
timestamps are localised with the table's zone; a stretch (or a whole region) written
in local wall time but labelled UTC is recognised by its signature — a gap of *k*
steps, the stretch, *k* conflicting duplicates, *k* being a UTC offset or DST shift the
zone really has — and re-labelled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridcast.errors import SchemaError
from gridcast.schema import LOAD, TIMESTAMP, validate
from gridcast.quality.report import N_EXAMPLES, _Checks, _iso
from gridcast.quality.arrays import _runs, _same_step_reference

#: neighbouring days (each side) the clock-change profile reference looks at
PROFILE_NEIGHBOUR_DAYS = 7
#: a clock-change stretch is tried at shifts up to this many steps beyond its own
CLOCK_SEARCH_STEPS = 2
#: longest mislabelled stretch looked for (beyond it the neighbours are mislabelled too)
MAX_CLOCK_STRETCH_DAYS = 60


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

