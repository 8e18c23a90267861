"""``gridcast stream`` (the bridge) and ``gridcast replay`` (a data set as live observations).

``python -m streaming.cli stream|replay ...`` runs the same two commands without the
installed ``gridcast`` script: the bridge image (``streaming/Containerfile``) copies
this package next to the Bento's source, where no entry points are installed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "stream",
        help="run the Kafka bridge: observations -> Redis state, forecasts -> Redis cache + forecasts topic",
        description="Consume observations and forecast requests from Kafka (settings: GRIDCAST_KAFKA_BOOTSTRAP, "
        "GRIDCAST_TOPIC_*, GRIDCAST_REDIS_URL, GRIDCAST_FORECAST_VIA). Stops cleanly on SIGTERM/Ctrl-C.",
    )
    p.add_argument("--via", choices=["inprocess", "http", "naive"], help="override settings.forecast_via")
    p.add_argument("--group", help="override settings.consumer_group")
    p.set_defaults(func=_stream)

    r = subparsers.add_parser(
        "replay",
        help="replay a canonical Parquet table as live observations on Kafka",
        description="Send the rows of a canonical table (gridcast data sample/import) to the observations topic "
        "in time order, key = region.",
    )
    r.add_argument("--data", required=True, help="canonical Parquet table")
    r.add_argument("--speed", type=float, default=3600.0,
                   help="simulated seconds per real second (3600 = an hour of data per second; 0 = as fast as possible)")
    r.add_argument("--regions", nargs="+", help="only these regions")
    r.add_argument("--limit", type=int, help="send at most this many observations")
    r.add_argument("--topic", help="override settings.topic_observations")
    r.add_argument("--weather", action="store_true",
                   help="also send the table's weather as daily vintages to settings.topic_weather")
    r.set_defaults(func=_replay)


def _settings(**overrides):
    from gridcast.settings import get_settings

    settings = get_settings()
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return settings.model_copy(update=overrides) if overrides else settings


def _stream(args: argparse.Namespace) -> int:
    import asyncio

    from streaming.bridge import run_bridge

    settings = _settings(forecast_via=args.via, consumer_group=args.group)
    asyncio.run(run_bridge(settings))
    return 0


def _replay(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streaming.replay import load_rows, replay
    from gridcast.errors import UserInputError

    path = Path(args.data)
    if not path.exists():
        raise UserInputError(f"no such file: {path}", field="data")
    if args.speed < 0:
        raise UserInputError(f"--speed must be >= 0, got {args.speed}", field="speed")
    settings = _settings()
    df = load_rows(path, regions=args.regions, limit=args.limit)
    topic = args.topic or settings.topic_observations
    with Progress(TextColumn("[bold]replay[/] → " + topic), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn()) as progress:
        task = progress.add_task("replay", total=len(df))
        sent = asyncio.run(replay(df, settings=settings, speed=args.speed, topic=topic,
                                  on_progress=lambda n: progress.update(task, completed=n), weather=args.weather))
    logger.info("replay: %d observations sent to %s", sent, topic)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``gridcast`` with only this adapter's commands (no entry-point discovery)."""
    from gridcast.cli import main as gridcast_main

    return gridcast_main(argv, registers=[register])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
