"""Columns, numbers, temperature units and weather files for :mod:`training.data.importer`.

Owns how one column of text becomes numbers (the first bad row named), how a
temperature becomes °C (the unit from ``--temp-unit`` or, when the values say
Celsius, from the values — :func:`decide_temp_unit`), and how a weather file
(long with one row per station, or wide) becomes one mean per timestamp with its
duplicates counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from gridcast.errors import UserInputError
from gridcast.schema import TEMPERATURE, TIMESTAMP
from training.data.dialect import Source
from training.data.dialect import label as _label
from training.data.dialect import read_text_table, require
from training.data.infer import UNIT_NAMES, infer_temp_unit
from training.data.timestamps import N_EXAMPLES, parse_timestamps

TEMP_UNITS = ("C", "K", "F")
#: a converted median temperature outside this range means the unit is wrong
PLAUSIBLE_MEDIAN_C = (-45.0, 45.0)


# ---- reading ------------------------------------------------------------------------


def read_columns(src: Source, columns: Sequence[str], *, what: str = "file",
                 all_columns: bool = False) -> pd.DataFrame:
    """Read ``columns`` (or every column) from a CSV (plain, .gz, .zip), Excel or Parquet file.

    The dialect (encoding, delimiter, decimal mark) is guessed by
    :func:`training.data.dialect.read_text_table`; values are text for CSV and Excel.

    Raises:
        UserInputError: the file does not exist, cannot be read, or lacks a column
            (the message lists the columns that exist).
    """
    frame, _ = read_text_table(src, what=what)
    columns = list(dict.fromkeys(columns))
    require(columns, list(frame.columns), _label(src))
    return frame if all_columns else frame[columns]


_require = require


# ---- units ----------------------------------------------------------------------------


def to_celsius(values: pd.Series, unit: str, *, column: str, label: str) -> pd.Series:
    """Convert a temperature column to °C, refusing a unit the values contradict.

    Raises:
        UserInputError: unknown unit, non-numeric values, or a converted median outside
            -45..45 °C (the message names the unit that would fit, e.g. Kelvin).
    """
    unit = unit.upper()
    if unit not in TEMP_UNITS:
        raise UserInputError(f"unknown temperature unit {unit!r}; use one of C, K, F", field="temp_unit")
    numeric = _numeric(values, column=column, label=label)
    converted = _convert(numeric, unit)
    median = float(converted.median()) if converted.notna().any() else 0.0
    lo, hi = PLAUSIBLE_MEDIAN_C
    if not lo <= median <= hi:
        raw = float(numeric.median())
        fits = [u for u in TEMP_UNITS if lo <= float(_convert(pd.Series([raw]), u).iloc[0]) <= hi]
        hint = f"; the values look like {UNIT_NAMES[fits[0]]} — pass --temp-unit {fits[0]}" if fits else ""
        raise UserInputError(
            f"temperature column {column!r} of {label} has median {raw:.1f}, which is "
            f"{median:.1f} °C as {UNIT_NAMES[unit]} (--temp-unit {unit}){hint}",
            field="temp_unit",
        )
    return converted


def _convert(values: pd.Series, unit: str) -> pd.Series:
    if unit == "K":
        return values - 273.15
    if unit == "F":
        return (values - 32.0) * 5.0 / 9.0
    return values


def _numeric(values: pd.Series, *, column: str, label: str) -> pd.Series:
    out = pd.to_numeric(values, errors="coerce").astype("float64")
    bad = out.isna() & values.notna() & (values.astype("string").str.strip() != "")
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserInputError(
            f"column {column!r} of {label} is not numeric: data row {pos + 1} has {values.iloc[pos]!r}",
            field=column,
        )
    return out



def decide_temp_unit(values: pd.Series, flag: str | None, *, column: str, label: str,
                     timestamps: pd.Series | None = None) -> tuple[str, dict[str, Any]]:
    """The unit to convert from: the flag if given, else the values' unit when it is Celsius.

    A Kelvin or Fahrenheit *guess* is not applied: converting a column on a guess
    would be a silent change to every value, and a wrong guess a silent wrong table.
    It is an error that shows the evidence and asks for ``--temp-unit``.

    Returns:
        The unit and its report (``unit``, ``source``: flag or values, ``evidence``).

    Raises:
        UserInputError: no flag, and the values look like Kelvin or Fahrenheit.
    """
    guess, evidence = infer_temp_unit(values, timestamps, name=column)
    if flag:
        unit = flag.upper()
        report = {"unit": unit, "source": "--temp-unit", "evidence": evidence, "values_suggest": guess}
        if guess != unit:
            report["note"] = f"the values suggest {UNIT_NAMES[guess]}; --temp-unit {unit} was given and applied"
        return unit, report
    if guess != "C":
        shown = ", ".join(f"{k} {v}" for k, v in evidence.items() if k in ("p1", "p99", "seasonal_swing", "name_says"))
        raise UserInputError(
            f"temperature column {column!r} of {label} has median {evidence['median']:.1f} ({shown}): "
            f"the values look like {UNIT_NAMES[guess]} ({evidence['rule']}) — pass --temp-unit {guess} to convert "
            f"them, or --temp-unit C if they really are Celsius",
            field="temp_unit",
        )
    return "C", {"unit": "C", "source": "values", "evidence": evidence}


# ---- weather --------------------------------------------------------------------------


def _split_cols(spec: str | Sequence[str] | None) -> list[str]:
    if spec is None:
        return []
    if isinstance(spec, str):
        return [c for c in (s.strip() for s in spec.split(",")) if c]
    return list(spec)


def read_weather(
    src: Source,
    *,
    time_col: str,
    temp_cols: Sequence[str],
    temp_unit: str | None,
    tz: str | None,
    station_col: str | None = None,
    extra_cols: dict[str, Sequence[str]] | None = None,
    nonexistent: str = "drop",
    dayfirst: bool = False,
    date_format: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a weather file (long with ``station_col``, or wide) → one mean per timestamp.

    Long format: one row per (station, time); duplicate (station, time) rows are
    counted — *exact* copies (the whole row equal) and *conflicting* ones (some value
    differs) — and the first row of each pair is kept (a stated, reproducible rule).
    Wide format: one row per time; several columns per variable (``temp_cols``) are
    averaged like stations. Station names are stripped of surrounding blanks.

    Returns:
        A frame indexed by UTC timestamp with ``temperature_c`` and the canonical
        names of ``extra_cols``, and the weather part of the import report.
    """
    label = _label(src)
    extra_cols = {k: list(v) for k, v in (extra_cols or {}).items() if v}
    value_cols = [*temp_cols, *(c for cols in extra_cols.values() for c in cols)]
    needed = [time_col, *([station_col] if station_col else []), *value_cols]
    # the whole row is needed to tell exact from conflicting copies
    raw = read_columns(src, needed, what="weather file", all_columns=True)
    if raw.empty:
        raise UserInputError(f"weather file {label} has no data rows", field="weather")
    ts, clock = parse_timestamps(raw[time_col], tz=tz, column=time_col, label=label, nonexistent=nonexistent,
                                 dayfirst=dayfirst, date_format=date_format)
    frame = raw.assign(**{TIMESTAMP: ts}).drop(columns=[time_col])
    frame = frame[frame[TIMESTAMP].notna()]
    key = [TIMESTAMP] + ([station_col] if station_col else [])
    if station_col:
        frame[station_col] = frame[station_col].astype("string").str.strip()
    report: dict[str, Any] = {"file": label, "rows": int(len(raw)), "format": "long" if station_col else "wide"}
    if clock:
        report["clock_change"] = clock
    report["duplicates"] = _weather_duplicates(raw, frame, key, station_col)
    frame = frame.drop_duplicates(subset=key, keep="first")

    first_temp = _numeric(frame[temp_cols[0]], column=temp_cols[0], label=label)
    temp_unit, report["temperature_unit"] = decide_temp_unit(first_temp, temp_unit, column=temp_cols[0], label=label,
                                                             timestamps=frame[TIMESTAMP])
    out = pd.DataFrame(index=pd.DatetimeIndex(sorted(frame[TIMESTAMP].unique()), name=TIMESTAMP))
    station_ranges: dict[str, dict[str, float | None]] = {}
    for canonical, cols in {TEMPERATURE: list(temp_cols), **extra_cols}.items():
        per_col = []
        for col in cols:
            values = _numeric(frame[col], column=col, label=label)
            if canonical == TEMPERATURE:
                values = to_celsius(values, temp_unit, column=col, label=label)
            per_col.append(values)
        numeric = frame[key].assign(**{f"__{i}": v for i, v in enumerate(per_col)})
        if station_col:
            # several columns for one variable in long format: their mean per row, then per station
            numeric["__v"] = pd.concat(per_col, axis=1).mean(axis=1)
            wide = numeric.pivot(index=TIMESTAMP, columns=station_col, values="__v")
        else:
            wide = numeric.set_index(TIMESTAMP)[[f"__{i}" for i in range(len(cols))]]
            wide.columns = cols
        if canonical == TEMPERATURE:
            station_ranges = {
                str(name): {"min": _r(wide[name].min()), "max": _r(wide[name].max())} for name in wide.columns
            }
            report["stations"] = [str(c) for c in wide.columns]
        out[canonical] = wide.mean(axis=1).reindex(out.index)
    report["temperature_by_station_c"] = station_ranges
    if station_ranges:
        lows = [r["min"] for r in station_ranges.values() if r["min"] is not None]
        highs = [r["max"] for r in station_ranges.values() if r["max"] is not None]
        report["temperature_single_station_c"] = {"min": min(lows, default=None), "max": max(highs, default=None)}
    report["temperature_mean_c"] = {"min": _r(out[TEMPERATURE].min()), "max": _r(out[TEMPERATURE].max())}
    report["timestamps"] = int(len(out))
    return out, report


def _weather_duplicates(raw: pd.DataFrame, frame: pd.DataFrame, key: list[str],
                        station_col: str | None) -> dict[str, Any]:
    """Count duplicate keys; 'exact' compares whole rows of the file, not just the used columns."""
    dup = frame.duplicated(subset=key, keep="first")
    n = int(dup.sum())
    result: dict[str, Any] = {"rows": n, "exact": 0, "conflicting": 0, "rule": "kept the first row of each duplicate key"}
    if not n:
        return result
    whole = raw.loc[frame.index]
    exact = int(whole.duplicated(keep="first").sum())
    result.update(exact=exact, conflicting=n - exact)
    dup_rows = frame.loc[dup, key]
    result["examples"] = [
        {k: str(v) for k, v in row.items()} for row in dup_rows.head(N_EXAMPLES).to_dict("records")
    ]
    if station_col:
        result["by_station"] = {str(k): int(v) for k, v in dup_rows[station_col].value_counts().sort_index().items()}
    return result


def _r(x: float) -> float | None:
    """Rounded for the report; None (JSON null, not NaN) when there is no value."""
    return round(float(x), 2) if pd.notna(x) else None
