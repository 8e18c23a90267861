"""``gridcast collect ...``: fetch real load and weather into the canonical table.

Subcommands: ``load`` (a zone's load + operator forecast + weather, incremental),
``weather-forecast`` (the next days' weather for the service), ``watch`` (poll on a
schedule and publish new observations to Kafka), ``zones`` (the built-in tables).
Heavy imports happen inside the handlers so ``gridcast --help`` stays fast.
"""

from __future__ import annotations

import argparse
import re

DURATION = re.compile(r"^(\d+)\s*(s|m|min|h)$")


def _duration_s(text: str) -> int:
    """Seconds from '900', '90s', '15m', '15min' or '1h'."""
    if text.isdigit():
        return int(text)
    match = DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 15m, 1h or 900s")
    n, unit = int(match.group(1)), match.group(2)
    return n * {"s": 1, "m": 60, "min": 60, "h": 3600}[unit]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "collect", help="fetch real load and weather (ENTSO-E, EIA, Open-Meteo)",
        description="Fetch real grid load and weather into the canonical table; only missing ranges are fetched.",
    )
    sub = parser.add_subparsers(dest="collect_command", metavar="SUBCOMMAND")
    sub.required = True

    load = sub.add_parser("load", help="a zone's load, operator forecast and weather -> canonical Parquet")
    load.add_argument("--source", required=True, choices=("entsoe", "eia"), help="entsoe (Europe) or eia (U.S.)")
    load.add_argument("--zone", required=True, help="bidding zone (ES, DE_LU, ... or an EIC) or balancing authority (PJM, CISO, ...)")
    load.add_argument("--start", required=True, help="first day/hour, UTC (YYYY-MM-DD[THH:MM])")
    load.add_argument("--end", required=True, help="end, exclusive, UTC (YYYY-MM-DD[THH:MM])")
    load.add_argument("--out", required=True, help="canonical Parquet to write")
    load.add_argument("--points", help="weather points 'lat,lon[,weight];...' (default: the zone's built-in places)")
    load.add_argument("--no-weather", action="store_true", help="skip weather (temperature_c left empty)")
    load.set_defaults(func=_load)

    fc = sub.add_parser("weather-forecast", help="the next days' hourly weather for a zone (future covariates)")
    fc.add_argument("--zone", required=True, help="zone or balancing authority (names the region)")
    fc.add_argument("--days", type=int, default=7, help="forecast days, 1..16 (default 7)")
    fc.add_argument("--points", help="weather points 'lat,lon[,weight];...' (default: built-in places)")
    fc.add_argument("--out", help="Parquet to write (default: settings.forecast_weather_path)")
    fc.set_defaults(func=_weather_forecast)

    watch = sub.add_parser("watch", help="poll a source on a schedule; publish new observations to Kafka")
    watch.add_argument("--source", required=True, choices=("entsoe", "eia"))
    watch.add_argument("--zone", required=True)
    watch.add_argument("--points", help="weather points 'lat,lon[,weight];...'")
    watch.add_argument("--every", type=_duration_s, default=None, help="interval, e.g. 15m (default: settings)")
    watch.add_argument("--lookback", type=_duration_s, default=72 * 3600, help="trailing window per poll (default 72h)")
    watch.add_argument("--forecast-days", type=int, default=7, help="weather forecast days refreshed per poll (0 = off)")
    watch.add_argument("--once", action="store_true", help="poll once and exit (cron-friendly)")
    watch.set_defaults(func=_watch)

    zones = sub.add_parser("zones", help="list the built-in zones, balancing authorities and weather places")
    zones.set_defaults(func=_zones)


def _collector(settings, progress=None):
    from training.collect.pipeline import Collector
    from training.collect.store import SeriesStore

    store = SeriesStore(settings.collect_dir, settle=_hours(settings.collect_settle_hours))
    return Collector(settings=settings, store=store, progress=progress)


def _hours(n: int):
    import pandas as pd

    return pd.Timedelta(hours=n)


def _load(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from training.collect.pipeline import parse_time
    from gridcast.schema import write_table
    from gridcast.settings import get_settings

    settings = get_settings()
    start, end = parse_time(args.start, name="start"), parse_time(args.end, name="end")
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f} h"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        collector = _collector(settings, progress)
        try:
            table, meta = collector.collect(args.source, args.zone, start, end, points=args.points,
                                            weather=not args.no_weather)
        finally:
            collector.close()
    path = write_table(table, args.out, meta)
    fetched = len(meta["collect"]["requests"])
    console.print(
        f"wrote {path}: {len(table)} rows, {table['timestamp'].min():%Y-%m-%d %H:%M} .. "
        f"{table['timestamp'].max():%Y-%m-%d %H:%M} UTC, load {table['load_mw'].min():.0f}..{table['load_mw'].max():.0f} MW, "
        f"{fetched} range(s) fetched, the rest from {settings.collect_dir}"
    )
    console.print(f"next: gridcast data check {path}")
    return 0


def _weather_forecast(args: argparse.Namespace) -> int:
    from pathlib import Path

    from training.collect import openmeteo
    from training.collect.watch import write_forecast_weather
    from gridcast.settings import get_settings

    settings = get_settings()
    points = openmeteo.points_for(args.zone, args.points)
    collector = _collector(settings)
    try:
        frame = collector.weather_forecast(args.zone, points, args.days)
    finally:
        collector.close()
    path = write_forecast_weather(frame, Path(args.out) if args.out else settings.forecast_weather_path)
    print(f"wrote {path}: {len(frame)} hours of forecast weather for {args.zone}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    import asyncio

    from training.collect.watch import KafkaPublisher, Watcher, run_schedule
    from gridcast.settings import get_settings

    settings = get_settings()
    publisher = KafkaPublisher(settings.kafka_bootstrap, settings.topic_observations)
    weather = KafkaPublisher(settings.kafka_bootstrap, settings.topic_weather) if args.forecast_days else None
    collector = _collector(settings)
    watcher = Watcher(
        collector=collector, publisher=publisher, source=args.source, zone=args.zone, points=args.points,
        state_path=settings.collect_dir / "watch" / f"{args.source}-{args.zone}.json",
        lookback=_hours(args.lookback / 3600),
        forecast_days=args.forecast_days, forecast_path=settings.forecast_weather_path, weather_publisher=weather,
    )

    async def main() -> int:
        await publisher.start()
        if weather is not None:
            await weather.start()
        try:
            return await run_schedule(watcher.poll_once, every_s=args.every or settings.collect_watch_every_s,
                                      iterations=1 if args.once else None)
        finally:
            await publisher.stop()
            if weather is not None:
                await weather.stop()
            collector.close()

    published = asyncio.run(main())
    print(f"published {published} observation(s) to {settings.topic_observations}")
    return 0


def _zones(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from training.collect import eia, entsoe, openmeteo

    table = Table(title="built-in zones")
    for col in ("source", "zone", "code / name", "weather places"):
        table.add_column(col)
    for zone, code in sorted(entsoe.ZONES.items()):
        table.add_row("entsoe", zone, code, ", ".join(p.name for p in openmeteo.PLACES.get(zone, ())))
    for ba, name in sorted(eia.BALANCING_AUTHORITIES.items()):
        table.add_row("eia", ba, name, ", ".join(p.name for p in openmeteo.PLACES.get(ba, ())))
    Console().print(table)
    return 0
