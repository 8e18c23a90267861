"""``gridcast data sample|import|check|plot`` — the data pipeline from the shell.

Raw → canonical Parquet (``sample`` generates it, ``import`` maps someone else's
files onto it) → ``check`` (quality report, cleaned table, exit 1 when unusable) →
``plot`` (the PNGs a person looks at first). Handlers import pandas, matplotlib and
the data modules lazily so that ``gridcast --help`` stays fast; every user mistake is
a :class:`~gridcast.errors.UserInputError` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

#: canonical optional weather column → the flag that maps a source column onto it
WEATHER_FLAGS = {
    "humidity_pct": "--humidity-col",
    "wind_speed_ms": "--wind-col",
    "cloud_cover_pct": "--cloud-col",
    "shortwave_wm2": "--shortwave-col",
    "pressure_hpa": "--pressure-col",
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``gridcast data`` and its four actions to the top-level parser."""
    data = sub.add_parser("data", help="generate, import, check and plot load data")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True

    p = dsub.add_parser("sample", help="write seeded synthetic demo data (clearly marked synthetic)")
    p.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    p.add_argument("--days", type=int, default=365, help="length in days (default 365)")
    p.add_argument("--freq", default="1h", help="step, e.g. 1h or 30min (default 1h)")
    p.add_argument("--regions", type=int, default=1, help="number of regions (default 1)")
    p.add_argument("--country", default=None, help="ISO code for holidays and climate (default: settings, VN)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: settings)")
    p.add_argument("--start", default="2023-01-01", help="first local date (default 2023-01-01)")
    p.add_argument("--faults", action="store_true", help="inject a known set of faults and record them")
    p.set_defaults(func=run_sample)

    p = dsub.add_parser("import", help="map a load file (+ weather file) onto the canonical table")
    p.add_argument("src", type=Path, help="load file: CSV (plain, .gz, .zip) or Parquet")
    p.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    p.add_argument("--time-col", default=None,
                   help="timestamp column (default: guessed from the names: timestamp, time, datetime, ...; "
                        "or a date column plus an hour column)")
    p.add_argument("--load-col", default=None, help="load column, MW (default: guessed: load_mw, load, demand, ...)")
    p.add_argument("--temp-col", default=None,
                   help="temperature column of the load file (default: guessed: temperature, temp, t2m, ...)")
    p.add_argument("--temp-unit", default=None, type=str.upper, choices=["C", "K", "F"],
                   help="unit of the temperature column (default: inferred from the values; only C is applied "
                        "on a guess, K or F must be stated)")
    p.add_argument("--resample", default=None, metavar="STEP",
                   help="when the step changes inside the series, aggregate to STEP (default: the coarsest step)")
    p.add_argument("--tz", default=None,
                   help="local time zone: required for timestamps without offset, recorded for calendar checks")
    p.add_argument("--nonexistent", default="drop", choices=["drop", "shift"],
                   help="naive wall times skipped by a spring clock change: drop (default) or shift forward")
    p.add_argument("--dayfirst", action="store_true",
                   help="read non-ISO dates like 01.02.2024 day-first (1 Feb), as European files mean them")
    p.add_argument("--date-format", default=None, metavar="FMT",
                   help="explicit strptime format of the timestamps, e.g. '%%d.%%m.%%Y %%H:%%M'")
    p.add_argument("--region", default="region-1", help="region name (default region-1)")
    p.add_argument("--region-col", default=None, help="column holding the region (instead of --region)")
    p.add_argument("--country", default=None, help="ISO country code recorded in the metadata")
    p.add_argument("--reference-col", default=None, help="an outside forecast column (e.g. the operator's)")
    p.add_argument("--weather", type=Path, default=None, help="separate weather file (CSV/.gz/.zip/Parquet)")
    p.add_argument("--station-col", default=None, help="station column: the weather file is long, stations averaged")
    p.add_argument("--weather-time-col", default=None, help="timestamp column of the weather file (default: --time-col)")
    p.add_argument("--weather-temp-col", default=None,
                   help="temperature column(s) of the weather file; comma-separated wide columns are averaged")
    for canonical, flag in WEATHER_FLAGS.items():
        p.add_argument(flag, dest=f"w_{canonical}", default=None, metavar="COL",
                       help=f"source column(s) for {canonical} (weather file if given, else load file)")
    p.set_defaults(func=run_import)

    p = dsub.add_parser("check", help="data-quality checks: report, cleaned table, exit 1 when unusable")
    p.add_argument("path", type=Path, help="canonical Parquet table")
    p.add_argument("--report", type=Path, default=None, help="write the JSON report here")
    p.add_argument("--clean-out", type=Path, default=None, help="write the cleaned Parquet table here")
    p.add_argument("--repair-dates", action="store_true", help="re-label day/month-transposed dates")
    p.set_defaults(func=run_check)

    p = dsub.add_parser("plot", help="PNG overview plots (flags, daily profiles, load vs temperature, months)")
    p.add_argument("path", type=Path, help="canonical Parquet table")
    p.add_argument("--out", type=Path, required=True, help="directory for the PNGs")
    p.add_argument("--report", type=Path, default=None,
                   help="quality report JSON whose flags to mark (default: the one `data check --clean-out` embedded)")
    p.set_defaults(func=run_plot)


# ---- handlers ----------------------------------------------------------------------------


def run_sample(args: argparse.Namespace) -> int:
    """Generate the seeded demo table (optionally with known faults) and say what was written."""
    from gridcast.synthetic import generate
    from gridcast.errors import UserInputError
    from gridcast.schema import write_table
    from gridcast.settings import get_settings

    settings = get_settings()
    if args.days < 1 or args.regions < 1:
        raise UserInputError("--days and --regions must be at least 1", field="days")
    try:
        step = _timedelta(args.freq)
    except ValueError:
        raise UserInputError(f"--freq {args.freq!r} is not a frequency like 1h or 30min", field="freq") from None
    if step.total_seconds() <= 0 or 86400 % step.total_seconds():
        raise UserInputError(f"--freq {args.freq!r} must divide a day (e.g. 1h, 30min, 15min)", field="freq")
    seed = settings.seed if args.seed is None else args.seed
    df, meta = generate(days=args.days, freq=args.freq, regions=args.regions,
                        country=args.country or settings.country, seed=seed, start=args.start)
    if args.faults:
        from gridcast.quality.faults import inject_faults

        try:
            df, meta = inject_faults(df, meta, seed=seed, freq=args.freq)
        except ValueError as exc:  # the injector's way of saying the table has no room for them
            raise UserInputError(f"--faults: {exc}; use more --days", field="days") from None
    path = write_table(df, args.out, meta)
    console = _console()
    console.print(f"wrote [bold]{path}[/] — synthetic: {len(df):,} rows, "
                  f"{df['region'].nunique()} region(s), freq {meta.get('freq')}, "
                  f"{df['timestamp'].min()} .. {df['timestamp'].max()} (UTC)")
    if args.faults:
        faults = meta.get("faults", {})
        console.print("injected faults: " + ", ".join(f"{k}={v.get('count')}" for k, v in faults.items()))
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Import a load (+ weather) file and print what was decided: rows, ranges, duplicates, clock changes."""
    from training.data.importer import import_table
    from gridcast.schema import write_table

    weather_cols = {c: getattr(args, f"w_{c}") for c in WEATHER_FLAGS if getattr(args, f"w_{c}")}
    df, meta = import_table(
        args.src,
        time_col=args.time_col,
        load_col=args.load_col,
        temp_col=args.temp_col,
        temp_unit=args.temp_unit,
        tz=args.tz,
        region=args.region,
        region_col=args.region_col,
        reference_col=args.reference_col,
        weather=args.weather,
        station_col=args.station_col,
        weather_time_col=args.weather_time_col,
        weather_temp_col=args.weather_temp_col,
        weather_cols=weather_cols,
        country=args.country,
        nonexistent=args.nonexistent,
        dayfirst=args.dayfirst,
        date_format=args.date_format,
        resample=args.resample,
        progress=True,
    )
    path = write_table(df, args.out, meta)
    _console().print(import_summary(meta, path))
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Run the quality checks; exit 1, saying why, when the data cannot be used for forecasting."""
    from gridcast.quality.checks import check, render_summary
    from gridcast.schema import read_table, write_table
    from gridcast.settings import get_settings

    df, meta = read_table(args.path)
    result = check(df, meta, settings=get_settings(), repair_dates=args.repair_dates)
    console = _console()
    console.print(render_summary(result.report))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(result.report, indent=2, default=_json_default))
        console.print(f"report: [bold]{args.report}[/]")
    if args.clean_out:
        # the full report travels with the cleaned table, so `data plot` can mark its flags
        clean_meta = {**result.meta, "quality_report": result.report}
        write_table(result.clean, args.clean_out, clean_meta)
        console.print(f"cleaned table: [bold]{args.clean_out}[/] ({len(result.clean):,} rows)")
    if not result.usable:
        import sys

        print("gridcast data check: the data cannot be used: " + "; ".join(result.reasons), file=sys.stderr)
        return 1
    return 0


def run_plot(args: argparse.Namespace) -> int:
    """Write the overview PNGs, marking the flags of the report given or embedded by `data check`."""
    from gridcast.quality.plots import plot_all
    from gridcast.errors import UserInputError
    from gridcast.schema import read_table

    df, meta = read_table(args.path)
    report = meta.get("quality_report")
    if args.report:
        if not args.report.exists():
            raise UserInputError(f"report not found: {args.report}", field="report")
        try:
            report = json.loads(args.report.read_text())
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{args.report} is not a JSON report ({exc})", field="report") from None
    paths = plot_all(df, report, args.out, meta=meta)
    _console().print(f"wrote {len(paths)} plot(s) to [bold]{args.out}[/]:\n" + "\n".join(f"  {p}" for p in paths))
    return 0


# ---- helpers ---------------------------------------------------------------------------


def import_summary(meta: dict[str, Any], path: Path) -> Any:
    """A rich table of what ``data import`` wrote: rows, range, frequency, columns, decisions."""
    from rich.table import Table

    rep = meta["import_report"]
    table = Table(title=f"imported → {path}", show_header=True, header_style="bold")
    table.add_column("item")
    table.add_column("value")
    table.add_row("rows", f"{rep['rows']:,} (read {rep['rows_read']:,})")
    d = rep.get("dialect") or {}
    if d:
        table.add_row("file format", ", ".join(f"{k} {v}" for k, v in d.items() if k != "decimal_comma_columns"))
    inferred = rep.get("inferred") or {}
    for c in inferred.get("columns", []):
        table.add_row(f"{c['role']} ←", f"{c['column']!r} ({c['why']})")
    if inferred.get("weather_temperature_column"):
        c = inferred["weather_temperature_column"]
        table.add_row("weather temperature ←", f"{c['column']!r} ({c['why']})")
    if inferred.get("timestamps"):
        table.add_row("timestamps", ", ".join(f"{k} {v}" for k, v in inferred["timestamps"].items()))
    unit = inferred.get("temperature_unit") or (rep.get("weather") or {}).get("temperature_unit")
    if unit:
        ev = unit.get("evidence", {})
        table.add_row("temperature unit", f"{unit['unit']} (from {unit['source']}; median {ev.get('median')}, "
                      f"p1..p99 {ev.get('p1')}..{ev.get('p99')}, seasonal swing {ev.get('seasonal_swing', '—')})"
                      + (f"; {unit['note']}" if unit.get("note") else ""))
    fc = rep.get("frequency_change")
    if fc:
        changes = "; ".join(f"{c['at']}: {c['from_step']} → {c['to_step']}" for c in fc["changes"])
        table.add_row("step changes", f"{changes} — {fc['rule']} ({fc['rows_aggregated']:,} rows aggregated, "
                      f"{fc['incomplete_intervals']} incomplete intervals)")
    table.add_row("range (UTC)", " .. ".join(rep["range_utc"]))
    table.add_row("frequency", str(meta["freq"]))
    table.add_row("regions", ", ".join(meta["regions"]))
    for col, r in rep["ranges"].items():
        src = meta["source_columns"].get(col, "")
        table.add_row(col, f"{_fmt(r['min'])} .. {_fmt(r['max'])}, missing {r['missing']:,}  ← {src!r}")
    table.add_row("exact duplicate rows dropped", str(rep["duplicates_exact_dropped"]))
    table.add_row("conflicting duplicate timestamps", f"{rep['duplicates_conflicting']} (left for `data check`)")
    if rep.get("clock_change"):
        cc = rep["clock_change"]
        table.add_row("clock change", f"{cc['ambiguous']} ambiguous ({cc['ambiguous_resolved_by_order']} resolved by "
                      f"order, {cc['ambiguous_single']} single), {cc['nonexistent']} non-existent "
                      f"({cc['nonexistent_action']})")
    if rep.get("weather"):
        w = rep["weather"]
        d = w["duplicates"]
        table.add_row("weather file", f"{w['file']} ({w['format']}, {w['rows']:,} rows)")
        if w.get("stations"):
            table.add_row("stations", ", ".join(w["stations"]))
        table.add_row("weather duplicates", f"{d['rows']:,} duplicate rows: {d['exact']} exact, "
                      f"{d['conflicting']} conflicting — {d['rule']}")
        if w.get("temperature_single_station_c"):
            s = w["temperature_single_station_c"]
            table.add_row("single-station temperature °C", f"{s['min']} .. {s['max']}")
        m = w["temperature_mean_c"]
        table.add_row("mean temperature °C", f"{m['min']} .. {m['max']}")
        table.add_row("load hours without weather", str(w["load_timestamps_without_weather"]))
    return table


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:,}"


def _timedelta(freq: str) -> Any:
    import pandas as pd

    return pd.Timedelta(pd.tseries.frequencies.to_offset(freq))


def _console() -> Any:
    from rich.console import Console

    return Console(width=120)


def _json_default(obj: Any) -> Any:
    """Timestamps, numpy scalars and paths in a report become plain JSON."""
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return str(obj)
