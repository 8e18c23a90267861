"""Timestamps to UTC: offsets, naive local wall time and its clock-change hours, first bad row named.

Owns the timestamp parsing of :mod:`training.data.importer` (epoch numbers and
separate date/hour columns are recognised in :mod:`training.data.infer` first).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from gridcast.errors import UserInputError

#: an explicit offset after a time of day: '...10:00Z', '...10:00:00+01:00', '...10:00 -0500'
_OFFSET_RE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
#: examples kept per reported item, so reports stay small
N_EXAMPLES = 5


def parse_timestamps(values: pd.Series, *, tz: str | None, column: str, label: str,
                     nonexistent: str = "drop", dayfirst: bool = False,
                     date_format: str | None = None) -> tuple[pd.Series, dict[str, Any]]:
    """Parse a timestamp column to UTC.

    Values with an offset (``+01:00``, ``Z``) are exact instants and are converted to
    UTC whatever ``tz`` says. Naive values are local wall time in ``tz`` and go
    through :func:`localize`; without ``tz`` they are refused, because guessing UTC
    silently shifts every hour of a local-time file.

    ISO 8601 is tried first; other layouts go through pandas' per-value parser, which
    reads ``01.02.2024`` month-first unless ``dayfirst`` — a European file read that
    way is exactly the day/month swap ``data check`` later hunts for, so say
    ``dayfirst`` or give ``date_format`` (strptime) when the file is not ISO.

    Returns:
        The UTC timestamps (NaT where a non-existent hour was dropped) and a
        clock-change report (empty when nothing was ambiguous or non-existent).

    Raises:
        UserInputError: an unparseable value (names the first bad row and value), or
            naive values without ``tz``.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").astype("datetime64[ns, UTC]"), {}
    if pd.api.types.is_datetime64_dtype(values.dtype):
        naive = values.astype("datetime64[ns]")
        aware_mask = pd.Series(False, index=values.index)
    else:
        text = values.astype("string").str.strip()
        bad_empty = text.isna() | (text == "")
        if bad_empty.any():
            _bad_row(values, int(np.flatnonzero(bad_empty.to_numpy())[0]), column, label, "empty")
        aware_mask = text.str.contains(_OFFSET_RE, regex=True).astype(bool)
        naive = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
        out_aware = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
        if aware_mask.any():
            out_aware[aware_mask] = _to_datetime(text[aware_mask], values, column, label, utc=True,
                                                 dayfirst=dayfirst, date_format=date_format)
        if (~aware_mask).any():
            naive[~aware_mask] = _to_datetime(text[~aware_mask], values, column, label, utc=False,
                                              dayfirst=dayfirst, date_format=date_format)
        if aware_mask.all():
            return out_aware.astype("datetime64[ns, UTC]"), {}
    if not tz:
        first = values[~aware_mask].iloc[0]
        raise UserInputError(
            f"timestamps in column {column!r} of {label} have no UTC offset (e.g. {first!s}); "
            "pass --tz ZONE for local wall time (e.g. --tz Europe/Madrid) or --tz UTC",
            field=column,
        )
    local, report = localize(naive[~aware_mask], tz, nonexistent=nonexistent)
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    out[~aware_mask] = local
    if aware_mask.any() and not pd.api.types.is_datetime64_dtype(values.dtype):
        out[aware_mask] = out_aware[aware_mask]
    return out, report


def _to_datetime(text: pd.Series, original: pd.Series, column: str, label: str, *, utc: bool,
                 dayfirst: bool = False, date_format: str | None = None) -> pd.Series:
    """``date_format`` if given, else strict ISO 8601, then the per-value parser; name the first failure."""
    for fmt in [date_format] if date_format else ["ISO8601", "mixed"]:
        kwargs = {"dayfirst": True} if dayfirst and fmt == "mixed" else {}
        parsed = pd.to_datetime(text, format=fmt, utc=utc, errors="coerce", **kwargs)
        if not parsed.isna().any():
            break
    bad = parsed.isna().to_numpy()
    if bad.any():
        pos = original.index.get_loc(text.index[int(np.flatnonzero(bad)[0])])
        _bad_row(original, int(pos), column, label, repr(str(original.iloc[int(pos)])))
    if not utc:
        parsed = parsed.astype("datetime64[ns]")
    return parsed


def _bad_row(values: pd.Series, pos: int, column: str, label: str, shown: str) -> None:
    raise UserInputError(
        f"cannot parse timestamp in column {column!r} of {label}: data row {pos + 1} "
        f"(line {pos + 2} of a CSV with a header) has {shown}",
        field=column,
    )


def localize(naive: pd.Series, tz: str, *, nonexistent: str = "drop") -> tuple[pd.Series, dict[str, Any]]:
    """Local wall time in ``tz`` → UTC, resolving clock-change hours.

    *Ambiguous* wall times (the repeated hour when clocks go back) are resolved by
    their order in the file: the first occurrence is summer time, the second winter
    time — how a meter logging local time writes them. A wall time that appears only
    once there stays summer time and is counted as ``ambiguous_single`` (the file
    lost one of the two hours). *Non-existent* wall times (skipped when clocks go
    forward) are dropped (``nonexistent="drop"``, returned as NaT) or shifted to the
    next valid instant (``"shift"``).

    Raises:
        UserInputError: unknown time zone or ``nonexistent`` rule.
    """
    if nonexistent not in ("drop", "shift"):
        raise UserInputError(f"nonexistent must be 'drop' or 'shift', not {nonexistent!r}", field="nonexistent")
    try:
        idx = pd.DatetimeIndex(naive)
        strict = idx.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    except Exception as exc:  # noqa: BLE001 - pytz/zoneinfo raise several types for a bad zone
        raise UserInputError(f"unknown time zone {tz!r} ({exc})", field="tz") from None
    # NaT there = ambiguous or non-existent; tell them apart with a second pass.
    summer = idx.tz_localize(tz, ambiguous=np.ones(len(idx), dtype=bool), nonexistent="NaT")
    is_nonexistent = np.asarray(summer.isna()) & ~np.asarray(idx.isna())
    is_ambiguous = np.asarray(strict.isna()) & ~is_nonexistent & ~np.asarray(idx.isna())

    amb_flags = np.ones(len(idx), dtype=bool)  # True = summer time (DST)
    single = 0
    if is_ambiguous.any():
        amb = pd.Series(idx[is_ambiguous])
        order = amb.groupby(amb).cumcount().to_numpy()
        counts = amb.map(amb.value_counts()).to_numpy()
        amb_flags[is_ambiguous] = order == 0
        single = int((counts == 1).sum())
    rule = "NaT" if nonexistent == "drop" else "shift_forward"
    local = idx.tz_localize(tz, ambiguous=amb_flags, nonexistent=rule)
    utc = pd.Series(local.tz_convert("UTC"), index=naive.index).astype("datetime64[ns, UTC]")
    report: dict[str, Any] = {}
    if is_ambiguous.any() or is_nonexistent.any():
        report = {
            "timezone": tz,
            "ambiguous": int(is_ambiguous.sum()),
            "ambiguous_resolved_by_order": int(is_ambiguous.sum()) - single,
            "ambiguous_single": single,
            "ambiguous_examples": _examples(idx[is_ambiguous]),
            "nonexistent": int(is_nonexistent.sum()),
            "nonexistent_action": "dropped" if nonexistent == "drop" else "shifted forward",
            "nonexistent_examples": _examples(idx[is_nonexistent]),
        }
    return utc, report


def _examples(values: Any) -> list[str]:
    return [str(v) for v in pd.Series(values).drop_duplicates().head(N_EXAMPLES)]
