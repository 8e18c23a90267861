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
  :mod:`training.data.quality` moves only the columns of a defective file);
* without flags, it guesses — and reports each guess with its evidence in
  ``meta["import_report"]``: the columns (canonical names and common aliases,
  :mod:`training.data.infer`), the CSV dialect (encoding, delimiter, decimal mark;
  :mod:`training.data.dialect`), epoch or date + hour timestamps, the temperature
  unit (a Kelvin or Fahrenheit guess is an error asking for ``--temp-unit``);
* a change of step inside the series (hourly, then 15-minute) is reported and the
  finer part aggregated to the coarser step (:mod:`training.data.frequency`).

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
from training.data.dialect import label as _label
from training.data.dialect import read_text_table, require
from training.data.frequency import resolve_frequency_changes
from training.data.infer import UNIT_NAMES, combine_date_hour, infer_columns, infer_temp_unit, parse_epoch
from training.data.timestamps import (  # noqa: F401 - re-exported: callers import them from here
    N_EXAMPLES,
    _examples,
    localize,
    parse_timestamps,
)

#: optional weather columns a file may provide, by canonical name
WEATHER_COLUMNS = ("humidity_pct", "wind_speed_ms", "cloud_cover_pct", "shortwave_wm2", "pressure_hpa")
TEMP_UNITS = ("C", "K", "F")
#: a converted median temperature outside this range means the unit is wrong
PLAUSIBLE_MEDIAN_C = (-45.0, 45.0)

Source = str | Path | io.IOBase


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


# ---- the import -------------------------------------------------------------------------


def import_table(
    src: Source,
    *,
    time_col: str | None = None,
    load_col: str | None = None,
    temp_col: str | None = None,
    temp_unit: str | None = None,
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
    resample: str | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Import a load file (and optionally a weather file) into the canonical table.

    Args:
        src: load file — CSV (plain, .gz, .zip) or Parquet, or an open text stream.
        time_col / load_col: the timestamp and load (MW) columns; guessed from the
            column names when not given (:func:`training.data.infer.infer_columns`),
            also a date column plus an hour column.
        temp_col: temperature column in the load file (alternative: the weather file);
            guessed when neither is given.
        temp_unit: 'C', 'K' or 'F' — of whichever file holds the temperature; when not
            given, inferred from the values, and only Celsius is applied on a guess.
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
        resample: the step to aggregate to when the step changes inside the series
            (default: the coarsest step found).
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

    label = _label(src)
    report: dict[str, Any] = {"file": label}
    with _progress(progress) as step:
        step("reading load file")
        raw, dialect = read_text_table(src, what="load file")
        report["rows_read"] = int(len(raw))
        report["dialect"] = dialect
        if raw.empty:
            raise UserInputError(f"{label} has no data rows", field="path")
        load_extra = [] if weather is not None else [c for cols in weather_cols.values() for c in cols]
        require([c for c in [time_col, load_col, temp_col, reference_col, region_col, *load_extra] if c],
                list(raw.columns), label)
        pick = infer_columns(list(raw.columns), time_col=time_col, load_col=load_col, temp_col=temp_col,
                             need_temperature=weather is None)
        time_col, load_col, temp_col = pick["time"], pick["load"], pick["temperature"]
        inferred: dict[str, Any] = {"columns": pick["chosen"]}
        report["inferred"] = inferred

        step("parsing timestamps")
        clock: dict[str, Any] = {}
        if pick["date"]:
            text, inferred["timestamps"] = combine_date_hour(raw[pick["date"]], raw[pick["hour"]],
                                                             date_col=pick["date"], hour_col=pick["hour"], label=label)
            ts, clock = parse_timestamps(text, tz=tz, column=f"{pick['date']} + {pick['hour']}", label=label,
                                         nonexistent=nonexistent)
            time_col = f"{pick['date']}+{pick['hour']}"
        else:
            ts, epoch = parse_epoch(raw[time_col], column=time_col, label=label) if not pd.api.types.is_datetime64_any_dtype(raw[time_col]) else (None, None)
            if epoch:
                inferred["timestamps"] = {"format": epoch, "column": time_col, "timezone": "UTC (epoch)"}
            else:
                ts, clock = parse_timestamps(raw[time_col], tz=tz, column=time_col, label=label,
                                             nonexistent=nonexistent, dayfirst=dayfirst, date_format=date_format)
                inferred["timestamps"] = {"format": "date_format" if date_format else "text (ISO 8601 or per value)",
                                          "column": time_col}
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
            numeric_temp = _numeric(raw[temp_col], column=temp_col, label=label)
            unit, inferred["temperature_unit"] = decide_temp_unit(numeric_temp, temp_unit, column=temp_col,
                                                                  label=label, timestamps=ts)
            table[TEMPERATURE] = to_celsius(numeric_temp, unit, column=temp_col, label=label)
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

        step("checking the step")
        table, freq_change = resolve_frequency_changes(table, target=resample)
        if freq_change:
            report["frequency_change"] = freq_change

        if weather is not None:
            step("reading weather file")
            wlabel = _label(weather)
            if not weather_temp:
                wraw, _ = read_text_table(weather, what="weather file")
                wpick = infer_columns([c for c in wraw.columns if c not in (weather_time_col, station_col)],
                                      time_col="-", load_col="-", temp_col=None, need_temperature=True)
                weather_temp = [wpick["temperature"]]
                inferred["weather_temperature_column"] = wpick["chosen"][-1]
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

