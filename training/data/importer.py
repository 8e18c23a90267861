"""Import someone else's load (and weather) files into the canonical table.

Real files differ in every way that matters to a forecaster: column names, units
(Kelvin weather files are common), time zones (UTC with ``Z``, local time with
offsets, or naive local wall time with its clock-change hours), frequency, one
weather station or several, and duplicate rows. :func:`import_table` maps all of
that onto :mod:`gridcast.schema` and *reports* every decision it took, so that
``gridcast data check`` and a person can see what happened to the raw data:

* timestamps with an offset (``+01:00``, ``Z``) are converted to UTC; naive ones need
  ``tz`` and go through :func:`localize` (fall-back hours resolved by their order in the
  file, non-existent spring-forward hours dropped or shifted — all counted);
* exact duplicate rows are dropped; conflicting duplicates of the load file are left
  for the quality check (its rule decides), conflicting weather rows keep the first;
* several weather stations (long format with ``station_col``, or several columns in
  wide format) are averaged per timestamp, and each station's range is reported;
* temperature is converted to °C and a unit that does not fit the values is a
  :class:`~gridcast.errors.UserInputError` that names the likely unit;
* ``meta["sources"]`` records which file each column came from (the date repair in
  :mod:`training.data.quality` moves only the columns of a defective file).

Example:
    >>> import io, pandas as pd
    >>> csv = io.StringIO("t,MW,T\\n2024-01-01T00:00Z,10,280\\n2024-01-01T01:00Z,11,281\\n")
    >>> df, meta = import_table(csv, time_col="t", load_col="MW", temp_col="T", temp_unit="K")
    >>> df["temperature_c"].round(2).tolist(), meta["freq"]
    ([6.85, 7.85], '1h')
"""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gridcast.errors import UserInputError
from gridcast.schema import (
    LOAD,
    REFERENCE,
    REGION,
    TEMPERATURE,
    TIMESTAMP,
    infer_freq,
    validate,
)

#: optional weather columns a file may provide, by canonical name
WEATHER_COLUMNS = ("humidity_pct", "wind_speed_ms", "cloud_cover_pct", "shortwave_wm2", "pressure_hpa")
TEMP_UNITS = ("C", "K", "F")
#: a converted median temperature outside this range means the unit is wrong
PLAUSIBLE_MEDIAN_C = (-45.0, 45.0)
#: an explicit offset after a time of day: '...10:00Z', '...10:00:00+01:00', '...10:00 -0500'
_OFFSET_RE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|UTC|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
#: examples kept per reported item, so reports stay small
N_EXAMPLES = 5

Source = str | Path | io.IOBase


# ---- reading ------------------------------------------------------------------------


def _label(src: Source) -> str:
    return str(src) if isinstance(src, (str, Path)) else getattr(src, "name", "<stream>")


def read_columns(src: Source, columns: Sequence[str], *, what: str = "file",
                 all_columns: bool = False) -> pd.DataFrame:
    """Read ``columns`` (or every column) from a CSV (plain, .gz, .zip) or Parquet file.

    Everything is read as text first for CSV, so that the timestamp parser (not
    pandas' guesser) decides what a good timestamp is and can name the first bad row.

    Raises:
        UserInputError: the file does not exist, cannot be read, or lacks a column
            (the message lists the columns that exist).
    """
    columns = list(dict.fromkeys(columns))
    label = _label(src)
    if isinstance(src, (str, Path)):
        path = Path(src)
        if not path.exists():
            raise UserInputError(f"{what} not found: {path}", field="path")
        if path.is_dir():
            raise UserInputError(f"{what} is a directory, expected a CSV or Parquet file: {path}", field="path")
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            try:
                existing = pq.read_schema(path).names
            except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
                raise UserInputError(f"{path} is not a readable Parquet file ({exc})", field="path") from None
            _require(columns, existing, label)
            return pd.read_parquet(path, columns=None if all_columns else columns)
        if path.suffix.lower() == ".zip":
            try:
                with zipfile.ZipFile(path) as zf:
                    names = [n for n in zf.namelist() if not n.endswith("/")]
            except zipfile.BadZipFile:
                raise UserInputError(f"{path} is not a readable zip file", field="path") from None
            if len(names) != 1:
                raise UserInputError(
                    f"{path} holds {len(names)} files; expected exactly one CSV inside the zip", field="path"
                )
    try:
        header = pd.read_csv(src, nrows=0, compression="infer")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError) as exc:
        raise UserInputError(f"{label} is not a readable CSV file ({exc})", field="path") from None
    if not isinstance(src, (str, Path)):
        src.seek(0)
    _require(columns, list(header.columns), label)
    try:
        return pd.read_csv(src, usecols=None if all_columns else columns, dtype=str, compression="infer")
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, EOFError) as exc:
        raise UserInputError(f"{label} is not a readable CSV file ({exc})", field="path") from None


def _require(columns: Sequence[str], existing: Sequence[str], label: str) -> None:
    missing = [c for c in columns if c not in existing]
    if missing:
        quoted = ", ".join(repr(c) for c in existing)
        raise UserInputError(
            f"column {missing[0]!r} not in {label}; the columns are: {quoted}", field=missing[0]
        )


# ---- timestamps -----------------------------------------------------------------------


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
        hint = f"; the values look like {_UNIT_NAMES[fits[0]]} — pass --temp-unit {fits[0]}" if fits else ""
        raise UserInputError(
            f"temperature column {column!r} of {label} has median {raw:.1f}, which is "
            f"{median:.1f} °C as {_UNIT_NAMES[unit]} (--temp-unit {unit}){hint}",
            field="temp_unit",
        )
    return converted


_UNIT_NAMES = {"C": "Celsius", "K": "Kelvin", "F": "Fahrenheit"}


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
    temp_unit: str,
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


# ---- the import -------------------------------------------------------------------------


def import_table(
    src: Source,
    *,
    time_col: str = TIMESTAMP,
    load_col: str = LOAD,
    temp_col: str | None = None,
    temp_unit: str = "C",
    tz: str | None = None,
    region: str = "region-1",
    region_col: str | None = None,
    reference_col: str | None = None,
    weather: Source | None = None,
    station_col: str | None = None,
    weather_time_col: str | None = None,
    weather_temp_col: str | Sequence[str] | None = None,
    weather_cols: dict[str, str | Sequence[str] | None] | None = None,
    country: str | None = None,
    nonexistent: str = "drop",
    dayfirst: bool = False,
    date_format: str | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Import a load file (and optionally a weather file) into the canonical table.

    Args:
        src: load file — CSV (plain, .gz, .zip) or Parquet, or an open text stream.
        time_col / load_col: the timestamp and load (MW) columns.
        temp_col: temperature column in the load file (alternative: the weather file).
        temp_unit: 'C', 'K' or 'F' — of whichever file holds the temperature.
        tz: the region's local zone. Needed for naive (offset-less) timestamps; also
            recorded as ``meta["timezone"]`` for calendar checks on local dates.
        region / region_col: a fixed region name, or a column holding it.
        reference_col: an outside forecast (e.g. the operator's) → ``reference_mw``.
        weather: a separate weather file; ``station_col`` makes it long format.
        weather_time_col / weather_temp_col: its timestamp and temperature column(s)
            (comma-separated for several wide-format stations).
        weather_cols: canonical optional weather name → source column(s), read from
            the weather file if given, else from the load file.
        country: ISO code recorded for holiday-aware checks and features.
        nonexistent: 'drop' or 'shift' for spring-forward wall times (see :func:`localize`).
        dayfirst / date_format: how to read non-ISO timestamps (see :func:`parse_timestamps`);
            they apply to both files.
        progress: show a rich progress display on stderr.

    Returns:
        The canonical table and its metadata: ``sources`` (column → file),
        ``source_columns`` (column → original name), ``freq``, ``timezone``,
        ``import_report`` (rows read, duplicates, clock-change hours, weather).

    Raises:
        UserInputError: any problem with the input a person can fix.
    """
    for what, path in (("load file", src), ("weather file", weather)):
        if isinstance(path, (str, Path)) and not Path(path).exists():
            raise UserInputError(f"{what} not found: {path}", field="path")
    if tz:
        check_timezone(tz)
    weather_cols = {k: _split_cols(v) for k, v in (weather_cols or {}).items() if _split_cols(v)}
    unknown = sorted(set(weather_cols) - set(WEATHER_COLUMNS))
    if unknown:
        raise UserInputError(f"unknown weather column(s) {', '.join(unknown)}; known: {', '.join(WEATHER_COLUMNS)}",
                             field=unknown[0])
    weather_temp = _split_cols(weather_temp_col)
    if weather is None and (weather_temp or station_col or weather_time_col):
        raise UserInputError("--weather-temp-col/--station-col/--weather-time-col need --weather FILE", field="weather")
    if weather is not None and temp_col:
        raise UserInputError("give the temperature once: --temp-col (load file) or --weather-temp-col, not both",
                             field="temp_col")
    if weather is not None and not weather_temp:
        raise UserInputError("--weather needs --weather-temp-col (the temperature column of the weather file)",
                             field="weather_temp_col")
    if weather is None and not temp_col:
        raise UserInputError("no temperature: pass --temp-col, or --weather FILE with --weather-temp-col",
                             field="temp_col")

    label = _label(src)
    report: dict[str, Any] = {"file": label}
    with _progress(progress) as step:
        step("reading load file")
        load_extra = [] if weather is not None else [c for cols in weather_cols.values() for c in cols]
        cols = [time_col, load_col, *filter(None, [temp_col, reference_col, region_col]), *load_extra]
        raw = read_columns(src, cols, what="load file")
        report["rows_read"] = int(len(raw))
        if raw.empty:
            raise UserInputError(f"{label} has no data rows", field="path")

        step("parsing timestamps")
        ts, clock = parse_timestamps(raw[time_col], tz=tz, column=time_col, label=label, nonexistent=nonexistent,
                                     dayfirst=dayfirst, date_format=date_format)
        if clock:
            report["clock_change"] = clock
        table = pd.DataFrame({TIMESTAMP: ts})
        table[REGION] = raw[region_col].astype("string").str.strip() if region_col else region
        table[LOAD] = _numeric(raw[load_col], column=load_col, label=label)
        sources = {LOAD: label}
        source_columns = {LOAD: load_col}
        if reference_col:
            table[REFERENCE] = _numeric(raw[reference_col], column=reference_col, label=label)
            sources[REFERENCE], source_columns[REFERENCE] = label, reference_col
        if temp_col:
            table[TEMPERATURE] = to_celsius(raw[temp_col], temp_unit, column=temp_col, label=label)
            sources[TEMPERATURE], source_columns[TEMPERATURE] = label, temp_col
        if weather is None:
            for canonical, cols_ in weather_cols.items():
                table[canonical] = pd.concat(
                    [_numeric(raw[c], column=c, label=label) for c in cols_], axis=1
                ).mean(axis=1)
                sources[canonical], source_columns[canonical] = label, ",".join(cols_)
        dropped = table[TIMESTAMP].isna()
        table = table[~dropped]

        step("removing duplicate rows")
        exact = table.duplicated(keep="first")
        report["duplicates_exact_dropped"] = int(exact.sum())
        table = table[~exact]
        conflicting = table.duplicated(subset=[REGION, TIMESTAMP], keep=False)
        report["duplicates_conflicting"] = int(table[conflicting].duplicated(subset=[REGION, TIMESTAMP]).sum())
        if conflicting.any():
            report["duplicates_conflicting_note"] = "left in the table for `gridcast data check` to resolve"
            report["duplicates_conflicting_examples"] = _examples(table.loc[conflicting, TIMESTAMP])

        if weather is not None:
            step("reading weather file")
            wlabel = _label(weather)
            wx, wreport = read_weather(
                weather,
                time_col=weather_time_col or time_col,
                temp_cols=weather_temp,
                temp_unit=temp_unit,
                tz=tz,
                station_col=station_col,
                extra_cols=weather_cols,
                nonexistent=nonexistent,
                dayfirst=dayfirst,
                date_format=date_format,
            )
            step("joining load and weather")
            joined = table.join(wx, on=TIMESTAMP)
            missing = int(joined[TEMPERATURE].isna().sum())
            wreport["load_timestamps_without_weather"] = missing
            wreport["weather_timestamps_outside_load"] = int((~wx.index.isin(table[TIMESTAMP])).sum())
            table = joined
            report["weather"] = wreport
            for canonical in wx.columns:
                sources[canonical] = wlabel
                source_columns[canonical] = (
                    ",".join(weather_temp) if canonical == TEMPERATURE else ",".join(weather_cols[canonical])
                )

        step("validating")
        if table[TIMESTAMP].nunique() < 2:
            raise UserInputError(f"{label} has fewer than two distinct timestamps", field=time_col)
        out = validate(table)
        freq = infer_freq(out[TIMESTAMP])
        report["rows"] = int(len(out))
        report["rows_dropped_nonexistent_time"] = int(dropped.sum())
        report["range_utc"] = [out[TIMESTAMP].min().isoformat(), out[TIMESTAMP].max().isoformat()]
        report["ranges"] = {
            c: {"min": _r(out[c].min()), "max": _r(out[c].max()), "missing": int(out[c].isna().sum())}
            for c in out.columns
            if c not in (TIMESTAMP, REGION)
        }
    meta: dict[str, Any] = {
        "synthetic": False,
        "freq": freq,
        "timezone": tz,
        "country": country.upper() if country else None,
        "regions": sorted(out[REGION].unique().tolist()),
        "sources": sources,
        "source_columns": source_columns,
        "import_report": report,
    }
    return out, meta


def check_timezone(tz: str) -> None:
    """Refuse a zone name the tz database does not know (a typo would shift every hour).

    Raises:
        UserInputError: unknown zone.
    """
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UserInputError(f"unknown time zone {tz!r}; use an IANA name such as Europe/Madrid or UTC",
                             field="tz") from None


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    """A rich spinner naming the current step (stderr, transient); a no-op when off."""
    import sys

    # a spinner in a log file or a pipe is noise: only show it on a terminal
    if not enabled or not sys.stderr.isatty():
        yield lambda _text: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("importing", total=None)
        yield lambda text: bar.update(task, description=text)
