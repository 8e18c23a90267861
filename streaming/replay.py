"""Replay a canonical table as live observations (what the original system's producer did).

Rows go to ``settings.topic_observations`` in time order, one JSON message per
(region, timestamp), key = region (so one region's points stay in order on one
partition). ``speed`` is simulated seconds per real second: 3600 plays an hour of data
per second; 0 sends as fast as the broker takes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gridcast.errors import UserInputError
from gridcast.schema import ALL_COLUMNS, REGION, TIMESTAMP, read_table
from gridcast.settings import Settings

logger = logging.getLogger(__name__)


def load_rows(path: str | Path, *, regions: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """The table's rows to replay, in time order (then region), optionally filtered.

    Raises:
        UserInputError: unknown regions (the message lists the known ones), a bad limit.
    """
    df, _ = read_table(path)
    if regions:
        known = set(df[REGION].unique())
        unknown = [r for r in regions if r not in known]
        if unknown:
            raise UserInputError(
                f"unknown region(s) {', '.join(unknown)}; the table has: {', '.join(sorted(known))}", field="regions"
            )
        df = df[df[REGION].isin(list(regions))]
    if limit is not None:
        if limit < 1:
            raise UserInputError(f"--limit must be at least 1, got {limit}", field="limit")
    df = df.sort_values([TIMESTAMP, REGION], kind="stable")
    if limit is not None:
        df = df.iloc[:limit]
    return df.reset_index(drop=True)


def messages(df: pd.DataFrame) -> Iterator[tuple[pd.Timestamp, bytes, bytes]]:
    """``(timestamp, key, value)`` per row; missing values are left out of the JSON."""
    cols = [c for c in ALL_COLUMNS if c in df.columns and c not in (TIMESTAMP, REGION)]
    values = df[cols].to_numpy(dtype=float, na_value=np.nan)
    for ts, region, row in zip(df[TIMESTAMP], df[REGION].astype(str), values, strict=True):
        doc = {"region": region, "timestamp": ts.isoformat()}
        doc.update({c: float(v) for c, v in zip(cols, row, strict=True) if math.isfinite(v)})
        yield ts, region.encode(), json.dumps(doc, separators=(",", ":")).encode()


async def replay(
    df: pd.DataFrame,
    *,
    settings: Settings,
    speed: float = 3600.0,
    topic: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    weather: bool = False,
) -> int:
    """Send ``df`` to Kafka; returns the number of messages acknowledged by the broker.

    Args:
        speed: simulated seconds per real second; 0 = as fast as possible.
        on_progress: called with the number of messages sent so far.
        weather: also send the table's weather as daily vintages to ``settings.topic_weather``
            (:func:`streaming.vintages.table_vintages`), each when the replay reaches its issue time.
    """
    from aiokafka import AIOKafkaProducer

    if speed < 0:
        raise UserInputError(f"--speed must be >= 0, got {speed}", field="speed")
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=10,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    sent = 0
    pending: list[asyncio.Future] = []
    try:
        t0_data: pd.Timestamp | None = None
        t0_wall = time.monotonic()
        for ts, out_topic, key, value in _merged(df, settings, topic, weather):
            if speed > 0:
                t0_data = ts if t0_data is None else t0_data
                due = t0_wall + (ts - t0_data).total_seconds() / speed
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.gather(*pending)  # flush what is due before sleeping
                    pending.clear()
                    if on_progress:
                        on_progress(sent)
                    await asyncio.sleep(wait)
            pending.append(await producer.send(out_topic, value=value, key=key))
            sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
                if on_progress:
                    on_progress(sent)
        await asyncio.gather(*pending)
        if on_progress:
            on_progress(sent)
    finally:
        await producer.stop()
    return sent


def _merged(df: pd.DataFrame, settings: Settings, topic: str | None, weather: bool
            ) -> Iterator[tuple[pd.Timestamp, str, bytes, bytes]]:
    """Observations, and with ``weather`` the table's vintages, in time order (a vintage before its hour's rows)."""
    import heapq

    obs = ((ts, 1, topic or settings.topic_observations, key, value) for ts, key, value in messages(df))
    streams = [obs]
    if weather:
        from streaming.vintages import table_vintages

        streams.append((ts, 0, settings.topic_weather, key, value)
                       for ts, key, value in table_vintages(df, step_s=settings.stream_step_s))
    for ts, _, out_topic, key, value in heapq.merge(*streams, key=lambda m: (m[0], m[1])):
        yield ts, out_topic, key, value
