"""Live collection: poll a source on a schedule and publish new observations to Kafka.

Each poll runs the same incremental collector over a trailing window (the store
re-fetches the unsettled recent hours, so late and revised values arrive), keeps the
rows newer than the last published timestamp, and publishes each as JSON
``{region, timestamp, load_mw, temperature_c, ...}`` keyed by region to
``settings.topic_observations``. The last published timestamp is saved after the
broker acknowledged the batch, so a crash re-publishes at most one batch (at least
once; the state store's ``add_observations`` is idempotent by (region, timestamp)).
Each poll also refreshes the weather forecast Parquet the service and UI read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from training.collect import EmptyRangeError, openmeteo
from training.collect.pipeline import Collector
from gridcast.errors import UserInputError
from gridcast.schema import REGION, TIMESTAMP

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where observations go (Kafka in production)."""

    async def publish(self, messages: list[tuple[str, dict[str, Any]]]) -> None: ...


class KafkaPublisher:
    """Publishes to a Kafka topic with aiokafka; waits for every acknowledgement.

    Args:
        bootstrap: bootstrap servers.
        topic: the observations topic.
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            key_serializer=str.encode,
            value_serializer=lambda v: json.dumps(v).encode(),
            acks="all",
        )
        await self._producer.start()

    async def publish(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        futures = [await self._producer.send(self.topic, value=value, key=key) for key, value in messages]
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


def to_messages(table: pd.DataFrame, after: pd.Timestamp | None) -> list[tuple[str, dict[str, Any]]]:
    """Rows with a load value newer than ``after`` as (key, JSON-able value); NaN fields left out."""
    rows = table[table["load_mw"].notna()]
    if after is not None:
        rows = rows[rows[TIMESTAMP] > after]
    messages = []
    for record in rows.to_dict("records"):
        value: dict[str, Any] = {}
        for column, item in record.items():
            if column == TIMESTAMP:
                value[column] = item.isoformat()
            elif isinstance(item, float) and math.isnan(item):
                continue
            else:
                value[column] = item
        messages.append((str(record[REGION]), value))
    return messages


@dataclass
class Watcher:
    """One zone's polling loop.

    Args:
        collector: the incremental collector.
        publisher: where observations go.
        source, zone, points: what to collect (as for ``gridcast collect load``).
        state_path: JSON file remembering the last published timestamp.
        lookback: trailing window fetched each poll.
        forecast_days: days of weather forecast written each poll (0 = none).
        forecast_path: where the weather forecast Parquet goes.
    """

    collector: Collector
    publisher: Publisher
    source: str
    zone: str
    state_path: Path
    points: str | None = None
    lookback: pd.Timedelta = pd.Timedelta(hours=72)
    forecast_days: int = 7
    forecast_path: Path | None = None
    weather_publisher: Publisher | None = None  # the weather-forecasts topic: one vintage per poll

    def last_published(self) -> pd.Timestamp | None:
        if not self.state_path.exists():
            return None
        return pd.Timestamp(json.loads(self.state_path.read_text())["last_published"])

    async def poll_once(self, now: pd.Timestamp) -> int:
        """Collect the trailing window, publish what is new, refresh the forecast; return how many published."""
        self.collector.now = now
        self.collector.store.now = now
        end = now.floor("1h")
        start = end - self.lookback
        try:
            table, _ = await asyncio.to_thread(
                self.collector.collect, self.source, self.zone, start, end, points=self.points
            )
        except EmptyRangeError as exc:
            # Live, an empty window is an outage upstream, not a user error: wait for the next tick.
            log.warning("%s %s: nothing in the last %s (%s)", self.source, self.zone, self.lookback, exc.detail)
            table = None
        messages = [] if table is None else to_messages(table, self.last_published())
        if messages:
            await self.publisher.publish(messages)
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            self.state_path.write_text(json.dumps({"last_published": messages[-1][1][TIMESTAMP]}))
        log.info("%s %s: published %d new observation(s)", self.source, self.zone, len(messages))
        if self.forecast_days and self.forecast_path is not None:
            pts = openmeteo.points_for(self.zone, self.points)
            frame = await asyncio.to_thread(self.collector.weather_forecast, self.zone, pts, self.forecast_days)
            write_forecast_weather(frame, self.forecast_path)
            vintage = vintage_message(frame)
            if self.weather_publisher is not None and vintage is not None:
                await self.weather_publisher.publish([vintage])
        return len(messages)


async def run_schedule(
    poll: Callable[[pd.Timestamp], Awaitable[int]],
    *,
    every_s: float,
    iterations: int | None = None,
    clock: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC"),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> int:
    """Call ``poll`` every ``every_s`` seconds (``iterations`` times, or forever).

    A failing poll (source down, network) is logged and retried at the next tick
    rather than ending the watch: a source that is down for an hour must not need a
    person to restart us. A user error (bad token, unknown zone) ends it.
    Returns the total number published.
    """
    total, done = 0, 0
    while iterations is None or done < iterations:
        started = clock()
        try:
            total += await poll(started)
        except UserInputError:
            raise  # a bad token or zone does not fix itself: stop and say so
        except Exception as exc:  # noqa: BLE001 - keep watching; the next tick retries
            log.error("poll failed: %s", exc)
        done += 1
        if iterations is not None and done >= iterations:
            break
        elapsed = (clock() - started).total_seconds()
        await sleep(max(every_s - elapsed, 0.0))
    return total


def vintage_message(frame: pd.DataFrame) -> tuple[str, dict[str, Any]] | None:
    """A fetched weather forecast as a ``gridcast.weather-forecasts`` message ``(region, document)``.

    The vintage is issued at the fetch time (``issued_at``, floored to the hour); only
    the hours after it are sent (the bridge's stream grid is hourly).
    """
    from gridcast.schema import WEATHER
    from gridcast.series import Series
    from gridcast.weather import message

    if frame.empty:
        return None
    issued = pd.Timestamp(frame["issued_at"].iloc[0]).floor("h")
    issued = issued.tz_localize("UTC") if issued.tzinfo is None else issued.tz_convert("UTC")
    ahead = frame[pd.to_datetime(frame[TIMESTAMP], utc=True) > issued]
    cols = [c for c in WEATHER if c in ahead.columns]
    if ahead.empty or not cols:
        return None
    series = Series.from_frame(ahead.set_index(pd.DatetimeIndex(pd.to_datetime(ahead[TIMESTAMP], utc=True)))[cols],
                               step=3600)
    region = str(ahead[REGION].iloc[0])
    doc = message(region, int(issued.timestamp()), series)
    return (region, doc) if doc["points"] else None


def write_forecast_weather(frame: pd.DataFrame, path: Path) -> Path:
    """Replace this region's rows in the forecast-weather Parquet (other regions kept).

    Columns: ``timestamp`` (UTC), ``region``, the canonical weather columns, ``issued_at``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        old = pd.read_parquet(path)
        old = old[~old[REGION].isin(frame[REGION].unique())]
        frame = pd.concat([old, frame], ignore_index=True)
    frame.sort_values([REGION, TIMESTAMP]).to_parquet(path, index=False)
    return path
