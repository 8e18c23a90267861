"""Changes of step inside a series (hourly, then 15-minute): found, reported, and resolved by a stated rule.

A meter replaced mid-series, or a market moving to 15-minute settlement, gives a
file whose step changes. Put on the finest grid, every coarse stretch would count as
missing steps (three per hour for hourly-then-15-minute) — gaps that never existed.
So the step is measured per day, runs of days with one step are *regimes*, and the
finer regimes are aggregated to the coarsest step (the mean over each coarse
interval: MW is a rate, so the mean is the interval's average load) unless another
target step is asked for. A target finer than a regime is refused: it would invent
values. The report says where the step changed, from what to what, and what was done.

Example:
    >>> import pandas as pd
    >>> ts = list(pd.date_range("2024-01-01", periods=48, freq="1h", tz="UTC")) + list(
    ...     pd.date_range("2024-01-03", periods=96, freq="15min", tz="UTC"))
    >>> df = pd.DataFrame({"timestamp": ts, "region": "r", "load_mw": 1.0})
    >>> out, rep = resolve_frequency_changes(df)
    >>> rep["changes"][0]["from_step"], rep["changes"][0]["to_step"], len(out), rep["target_step"]
    ('1h', '15min', 72, '1h')
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridcast.errors import UserInputError
from gridcast.schema import REGION, TIMESTAMP, to_alias

#: a regime is at least this many days with one step (a shorter run is noise: a gap, a duplicate)
MIN_REGIME_DAYS = 1


def regimes(ts: pd.Series) -> list[dict[str, Any]]:
    """Runs of UTC days with one step (the most common positive difference of the day).

    Returns:
        ``[{"from", "to", "step", "rows"}]`` in time order; one item when the step never changes.
    """
    t = pd.DatetimeIndex(pd.Series(ts).dropna().sort_values().unique())
    if len(t) < 3:
        return []
    diffs = pd.Series(t[1:] - t[:-1], index=t[:-1])
    diffs = diffs[diffs > pd.Timedelta(0)]
    day = diffs.index.floor("D")
    daily = diffs.groupby(day).agg(lambda d: d.mode().iloc[0])
    out: list[dict[str, Any]] = []
    for d, step in daily.items():
        if out and out[-1]["step"] == step:
            out[-1]["to_day"] = d
        else:
            out.append({"from_day": d, "to_day": d, "step": step})
    # a single odd day between two equal regimes (a day of gaps) is not a regime
    merged: list[dict[str, Any]] = []
    for r in out:
        days = (r["to_day"] - r["from_day"]).days + 1
        if merged and (days < MIN_REGIME_DAYS or r["step"] == merged[-1]["step"]):
            merged[-1]["to_day"] = r["to_day"]
        else:
            merged.append(dict(r))
    # the change is inside a day: move each regime's start back over the rows that
    # already have its step
    steps = pd.Series(t[1:] - t[:-1], index=t[1:])
    for prev, r in zip(merged, merged[1:], strict=False):
        start = r["from_day"]
        before = steps[(steps.index <= start) & (steps.index > start - pd.Timedelta("1D"))]
        while len(before) and before.iloc[-1] == r["step"]:
            start = before.index[-1] - before.iloc[-1]
            before = before.iloc[:-1]
        r["from_day"], prev["to_day_end"] = start, start
    result = []
    for r in merged:
        end = r.get("to_day_end", r["to_day"] + pd.Timedelta("1D"))
        inside = t[(t >= r["from_day"]) & (t < end)]
        result.append({"from": inside.min().isoformat(), "to": inside.max().isoformat(),
                       "step": to_alias(r["step"]), "rows": int(len(inside))})
    return result


def resolve_frequency_changes(df: pd.DataFrame, *, target: str | None = None,
                              numeric: list[str] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Aggregate finer regimes to one step per region; report every change.

    Args:
        df: a table with ``timestamp`` (UTC) and ``region``; exact duplicates already dropped.
        target: the step to aggregate to (default: the coarsest regime's step).
        numeric: the columns to aggregate (default: all but timestamp and region).

    Returns:
        The table (unchanged when the step never changes) and the report:
        ``{"changes": [{"region", "at", "from_step", "to_step"}], "regimes", "target_step",
        "rule", "rows_aggregated", "incomplete_intervals"}`` (empty when nothing changed).

    Raises:
        UserInputError: ``target`` is finer than a regime, or does not divide into it.
    """
    numeric = numeric or [c for c in df.columns if c not in (TIMESTAMP, REGION)]
    parts, report = [], {"changes": [], "regimes": {}, "rows_aggregated": 0, "incomplete_intervals": 0}
    steps_seen: set[pd.Timedelta] = set()
    per_region = {}
    for region, part in df.groupby(REGION, sort=True):
        found = regimes(part[TIMESTAMP])
        per_region[region] = found
        steps_seen |= {pd.Timedelta(r["step"]) for r in found}
    if len(steps_seen) <= 1 and target is None:
        return df, {}
    step = pd.Timedelta(target) if target else max(steps_seen)
    finer_than_target = [s for s in steps_seen if s > step]
    if finer_than_target or any(step % s for s in steps_seen):
        raise UserInputError(
            f"cannot put steps {', '.join(sorted(to_alias(s) for s in steps_seen))} on a {to_alias(step)} grid: "
            "the target must be a multiple of every step (aggregating); a finer one would invent values",
            field="resample")
    for region, part in df.groupby(REGION, sort=True):
        found = per_region[region]
        report["regimes"][str(region)] = found
        for a, b in zip(found, found[1:], strict=False):
            report["changes"].append({"region": str(region), "at": b["from"], "from_step": a["step"],
                                      "to_step": b["step"]})
        fine = part[TIMESTAMP].dt.floor(step) != part[TIMESTAMP]
        for r in found:
            if pd.Timedelta(r["step"]) < step:
                inside = (part[TIMESTAMP] >= pd.Timestamp(r["from"])) & (part[TIMESTAMP] <= pd.Timestamp(r["to"]))
                fine |= inside
        if not fine.any():
            parts.append(part)
            continue
        coarse = part[~fine]
        grouped = part[fine].assign(**{TIMESTAMP: part.loc[fine, TIMESTAMP].dt.floor(step)})
        counts = grouped.groupby(TIMESTAMP).size()
        agg = grouped.groupby(TIMESTAMP)[numeric].mean().reset_index().assign(**{REGION: region})
        finest = min(pd.Timedelta(r["step"]) for r in found)
        report["rows_aggregated"] += int(fine.sum())
        report["incomplete_intervals"] += int((counts < step / finest).sum())
        parts.append(pd.concat([coarse, agg[part.columns]], ignore_index=True))
    out = pd.concat(parts, ignore_index=True).sort_values([REGION, TIMESTAMP], kind="stable").reset_index(drop=True)
    report["target_step"] = to_alias(step)
    report["rule"] = (f"finer steps aggregated to {to_alias(step)} (mean of each interval; an interval missing "
                      "some of its finer steps is the mean of those present, counted as incomplete)")
    return out, report
