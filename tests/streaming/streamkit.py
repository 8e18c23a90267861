"""Helpers for the streaming tests: names per test, producing, consuming, waiting."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import redis

from gridcast.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def script(name: str, action: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        ["bash", str(SCRIPTS / name), action], env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=180,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{name} {action} failed: {result.stdout}\n{result.stderr}")


@dataclass
class Stream:
    """One test's private corner of the shared services: names + settings + helpers."""

    settings: Settings
    env: dict[str, str]

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)

    def count(self, region: str) -> int:
        with self.redis as r:
            return int(r.zcard(f"{self.settings.redis_key_prefix}:idx:{region}"))

    def latest(self, region: str) -> dict | None:
        with self.redis as r:
            raw = r.get(f"{self.settings.redis_key_prefix}:cache:latest:{region}")
        return None if raw is None else json.loads(raw)


def make_stream(redis_url: str, bootstrap: str, **overrides) -> Stream:
    uid = uuid.uuid4().hex[:10]
    values = {
        "redis_url": redis_url,
        "kafka_bootstrap": bootstrap,
        "topic_observations": f"t{uid}.obs",
        "topic_requests": f"t{uid}.req",
        "topic_forecasts": f"t{uid}.fc",
        "topic_dead_letter": f"t{uid}.dl",
        "topic_weather": f"t{uid}.wx",
        "consumer_group": f"g{uid}",
        "redis_key_prefix": f"t{uid}",
        "forecast_via": "naive",
        "stream_metrics_every_s": 1.0,
        "stream_session_timeout_ms": 6000,
        "stream_poll_ms": 100,
        "stream_backoff_max_s": 1.0,
        "redis_timeout_s": 0.5,
        **overrides,
    }
    env = {f"GRIDCAST_{k.upper()}": str(v) for k, v in values.items()}
    return Stream(settings=Settings(**values), env=env)




def observations(regions: Iterable[str], hours: int, start: str = "2024-03-01") -> list[dict]:
    """Time-ordered observation documents: ``hours`` per region, a daily load cycle."""
    idx = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    docs = []
    for i, ts in enumerate(idx):
        for k, region in enumerate(regions):
            docs.append({"region": region, "timestamp": ts.isoformat(),
                         "load_mw": 500.0 + 100 * k + 50 * ((i % 24) / 24), "temperature_c": 20.0 + (i % 24) / 4})
    return docs


async def produce(bootstrap: str, topic: str, docs: Iterable[dict | bytes], *, key_field: str = "region",
                  live: bool = False) -> None:
    """Send documents (dicts as JSON, bytes as they are) and wait for every acknowledgement.

    ``live``: each message's Kafka timestamp is its observation's own timestamp, as a
    producer sending measurements as they happen would stamp them.
    """
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for doc in docs:
            if isinstance(doc, bytes):
                value, key = doc, b"raw"
            else:
                value, key = json.dumps(doc).encode(), str(doc.get(key_field, "none")).encode()
            ts = int(pd.Timestamp(doc["timestamp"]).timestamp() * 1000) if live and isinstance(doc, dict) else None
            futures.append(await producer.send(topic, value=value, key=key, timestamp_ms=ts))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, *, until: Callable[[list], bool], timeout_s: float = 60) -> list:
    """Read ``topic`` from the beginning until ``until(messages)`` holds (or time runs out)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not until(out):
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                out.extend(msgs)
    finally:
        await consumer.stop()
    return out


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], *, timeout_s: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ok = predicate()
        if asyncio.iscoroutine(ok):
            ok = await ok
        if ok:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")


def held(stream: Stream, region: str) -> dict[pd.Timestamp, float]:
    """What Redis holds for ``region``: timestamp -> load (hash and index checked to agree)."""
    p = stream.settings.redis_key_prefix
    with stream.redis as r:
        rows = r.hgetall(f"{p}:obs:{region}")
        index = r.zrange(f"{p}:idx:{region}", 0, -1)
    assert sorted(rows) == sorted(index), f"{region}: hash and index out of step"
    return {pd.Timestamp(int(e), unit="s", tz="UTC"): json.loads(doc)["load_mw"] for e, doc in rows.items()}


def produced(docs: Iterable[dict], region: str, last: int | None = None) -> dict[pd.Timestamp, float]:
    """timestamp -> load of ``region``'s documents (the newest ``last`` of them if given)."""
    mine = [d for d in docs if isinstance(d, dict) and d["region"] == region]
    if last is not None:
        mine = mine[-last:]
    return {pd.Timestamp(d["timestamp"]): d["load_mw"] for d in mine}


async def committed_offsets(settings: Settings) -> dict[int, int]:
    """The consumer group's committed offsets on the observations topic, by partition."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.consumer_group)
    finally:
        await admin.close()
    return {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == settings.topic_observations}


async def end_offsets(settings: Settings) -> dict[int, int]:
    """The observations topic's end offsets, by partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        # the bridge creates its topics with settings.topic_partitions partitions
        parts = range(settings.topic_partitions)
        ends = await consumer.end_offsets([TopicPartition(settings.topic_observations, p) for p in parts])
    finally:
        await consumer.stop()
    return {tp.partition: off for tp, off in ends.items() if off > 0}


def delete_topics(settings: Settings) -> None:
    """Remove a test's topics from the shared broker (in a thread: the test's loop may be closed or running)."""
    import threading

    from aiokafka.admin import AIOKafkaAdminClient

    async def delete() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            names = [settings.topic_observations, settings.topic_requests, settings.topic_forecasts,
                     settings.topic_dead_letter, settings.topic_weather]
            mine = [t for t in names if t in existing]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()

    thread = threading.Thread(target=lambda: asyncio.run(delete()))
    thread.start()
    thread.join(timeout=30)
