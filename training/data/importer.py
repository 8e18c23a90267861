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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
from training.data.dialect import Source
from training.data.dialect import label as _label
from training.data.dialect import read_text_table, require
from training.data.frequency import resolve_frequency_changes
from training.data.infer import combine_date_hour, infer_columns, parse_epoch
from training.data.timestamps import (  # noqa: F401 - re-exported: callers import them from here
    N_EXAMPLES,
    _examples,
    localize,
    parse_timestamps,
)

from training.data.weather import (  # noqa: F401 - re-exported: callers import them from here
    PLAUSIBLE_MEDIAN_C,
    TEMP_UNITS,
    _numeric,
    _r,
    _split_cols,
    decide_temp_unit,
    read_columns,
    read_weather,
    to_celsius,
)

#: optional weather columns a file may provide, by canonical name
WEATHER_COLUMNS = ("humidity_pct", "wind_speed_ms", "cloud_cover_pct", "shortwave_wm2", "pressure_hpa")


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

