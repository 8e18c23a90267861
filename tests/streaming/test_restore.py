"""Kafka is the log, Redis a rebuildable cache of it: a lost Redis is restored from Kafka.

A PRIVATE Redis (own port and dir, :func:`private_redis`) is flushed while a bridge
streams into it, or while no bridge runs; the bridge restores each region's history
window from the observations topic and Redis ends with exactly that window: the
newest ``state_max_points`` rows of every region, each with the value produced.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pandas as pd
import pytest
from tests.streaming.streamkit import make_stream, observations, produce, script, wait_for
from tests.support import free_port

from streaming.bridge import Bridge

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WINDOW = 48  # state_max_points: the history window, in steps
HOURS = 96
REGIONS = ["a", "b"]


@pytest.fixture
def private_redis(tmp_path) -> Iterator[str]:
    env = {"REDIS_PORT": str(free_port()), "REDIS_DIR": str(tmp_path / "redis")}
    script("redis.sh", "up", env)
    try:
        yield f"redis://127.0.0.1:{env['REDIS_PORT']}/0"
    finally:
        script("redis.sh", "down", env)


@pytest.fixture
def live(services, private_redis):
    """A stream whose observations are recent and stamped with their own time, like a live feed."""
    from tests.streaming.streamkit import delete_topics

    stream = make_stream(private_redis, services["bootstrap"], state_max_points=WINDOW, max_future_s=3600)
    start = pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=HOURS)
    docs = observations(REGIONS, HOURS, start=start.isoformat())
    yield stream, docs
    delete_topics(stream.settings)


def held(stream, region: str) -> dict[pd.Timestamp, float]:
    """What Redis holds for ``region``: timestamp -> load, after checking hash and index agree."""
    p = stream.settings.redis_key_prefix
    with stream.redis as r:
        rows = r.hgetall(f"{p}:obs:{region}")
        index = r.zrange(f"{p}:idx:{region}", 0, -1)
    assert sorted(rows) == sorted(index), "hash and index out of step"
    return {pd.Timestamp(int(e), unit="s", tz="UTC"): json.loads(doc)["load_mw"] for e, doc in rows.items()}


def window(docs: list[dict], region: str, upto: int) -> dict[pd.Timestamp, float]:
    """The newest WINDOW rows of ``region`` among the first ``upto`` hours produced."""
    mine = [d for d in docs if d["region"] == region][:upto][-WINDOW:]
    return {pd.Timestamp(d["timestamp"]): d["load_mw"] for d in mine}


def has_window(stream, docs, upto: int) -> bool:
    return all(held(stream, r) == window(docs, r, upto) for r in REGIONS)


async def start(bridge: Bridge) -> asyncio.Task:
    task = asyncio.create_task(bridge.run())
    await wait_for(lambda: task.done() or bool(bridge.assigned), timeout_s=60, what="partitions assigned")
    if task.done():
        task.result()
    return task


async def stop(bridge: Bridge, task: asyncio.Task) -> None:
    bridge.stop()
    await asyncio.wait_for(task, 60)


async def test_flushall_mid_stream_is_restored_from_the_observations_topic(live):
    stream, docs = live
    s = stream.settings
    first, cut = 60, 60 * len(REGIONS)  # hours before the flush; their messages
    bridge = Bridge(s)
    task = await start(bridge)
    try:
        await produce(s.kafka_bootstrap, s.topic_observations, docs[:cut], live=True)
        await wait_for(lambda: has_window(stream, docs, first), what="the first 60 hours")
        assert bridge.restores == 0  # nothing was lost yet

        with stream.redis as r:
            r.flushall()  # a PRIVATE Redis: everything it held is gone
        assert all(held(stream, r) == {} for r in REGIONS)

        await produce(s.kafka_bootstrap, s.topic_observations, docs[cut:], live=True)
        last = pd.Timestamp(docs[-1]["timestamp"])
        await wait_for(lambda: has_window(stream, docs, HOURS) and all(
            stream.latest(r) and pd.Timestamp(stream.latest(r)["origin"]) == last for r in REGIONS),
            what="the window restored and the stream caught up")
    finally:
        await stop(bridge, task)

    assert has_window(stream, docs, HOURS)
    # the restore read only what the window needs: from (newest - window - max_future_s), i.e.
    # hours 10..59 of the 60 before the flush (hour 59 - 48 h - 1 h = hour 10), per region
    assert bridge.restored_messages == (first - 10) * len(REGIONS)
    assert bridge.restores >= 1


async def test_redis_lost_while_no_bridge_runs_is_restored_on_assignment(live):
    stream, docs = live
    s = stream.settings
    first = Bridge(s)
    task = await start(first)
    try:
        await produce(s.kafka_bootstrap, s.topic_observations, docs, live=True)
        await wait_for(lambda: has_window(stream, docs, HOURS), what="every hour")
    finally:
        await stop(first, task)

    with stream.redis as r:
        r.flushall()  # Redis replaced by an empty one while the bridges were down

    bridge = Bridge(s)
    task = await start(bridge)
    try:
        # no new message arrives: the assignment alone brings the window back
        await wait_for(lambda: has_window(stream, docs, HOURS), what="the window restored on assignment")
    finally:
        await stop(bridge, task)
    assert bridge.restores == 1 and bridge.metrics.counts["consumed"] == 0
    assert has_window(stream, docs, HOURS)


async def test_the_observations_topic_keeps_the_history_window(live):
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    stream, _ = live
    s = stream.settings
    bridge = Bridge(s)
    task = await start(bridge)
    await stop(bridge, task)
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    try:
        (resp,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, s.topic_observations)])
    finally:
        await admin.close()
    configs = {entry[0]: entry[1] for entry in resp.resources[0][4]}
    window_ms = (WINDOW * s.stream_step_s + s.max_future_s) * 1000
    assert int(configs["retention.ms"]) >= window_ms + 86400 * 1000
