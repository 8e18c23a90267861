"""Value checks on one region's regular grid: duplicates, gaps, Kelvin, bounds, spikes, flatlines.

Owns the ``duplicates_conflicting``, ``gaps``, ``temperature_unit``, ``bounds``,
``spikes`` and ``flatlines`` checks of :mod:`gridcast.quality.checks`, and the final
interpolation of short gaps. Each function works in place on (or returns) one
region's frame indexed by UTC timestamp, and records what it did in the report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridcast.schema import LOAD, TEMPERATURE, TIMESTAMP, bounds
from gridcast.settings import Settings
from gridcast.quality.report import N_EXAMPLES, _Checks, _iso, _num
from gridcast.quality.arrays import _fill, _runs, _same_step_reference

#: a temperature above this cannot be °C or °F on Earth: it is Kelvin
KELVIN_THRESHOLD = 200.0
KELVIN_OFFSET = 273.15
#: neighbouring days (each side) the spike reference looks at
SPIKE_NEIGHBOUR_DAYS = 3


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


def _apply_bounds(frame: pd.DataFrame, settings: Settings, checks: _Checks, region: str) -> None:
    for col, (lo, hi) in bounds(settings).items():
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

