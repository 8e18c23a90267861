"""At least once, proven: kill -9, Redis and Kafka restarts, two bridges in one group.

Each test streams N observations and then checks the two promises: Redis holds
exactly N (none lost, none doubled) and every region's latest forecast starts after
its last observation. Restarted services are PRIVATE instances (own ports and dirs).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
from aiokafka.partitioner import DefaultPartitioner
from tests.streaming.streamkit import ROOT, make_stream, observations, produce, script, wait_for

from streaming.bridge import Bridge

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def complete(stream, regions, hours) -> bool:
    return all(stream.count(r) == hours for r in regions)


def check_result(stream, docs, regions, hours) -> None:
    last = pd.Timestamp(docs[-1]["timestamp"])
    for region in regions:
        assert stream.count(region) == hours, region
        latest = stream.latest(region)
        assert latest is not None and pd.Timestamp(latest["origin"]) == last, region


async def start(bridge: Bridge) -> asyncio.Task:
    task = asyncio.create_task(bridge.run())
    await wait_for(lambda: task.done() or bool(bridge.assigned), timeout_s=60, what="partitions assigned")
    if task.done():
        task.result()
    return task


def spawn_bridge(stream) -> subprocess.Popen:
    env = {**os.environ, **stream.env, "GRIDCAST_STREAM_MAX_RECORDS": "10"}
    return subprocess.Popen([sys.executable, "-m", "training.cli", "stream"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def test_kill_9_mid_stream_then_restart_loses_and_doubles_nothing(stream):
    s = stream.settings
    regions = ["a", "b", "c"]
    hours = 96
    docs = observations(regions, hours)
    half = len(docs) // 2
    await produce(s.kafka_bootstrap, s.topic_observations, docs[:half])
    proc = spawn_bridge(stream)
    try:
        await wait_for(lambda: sum(stream.count(r) for r in regions) >= half // 3, timeout_s=90,
                       what="the first bridge to make progress")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        assert sum(stream.count(r) for r in regions) < len(docs)
        await produce(s.kafka_bootstrap, s.topic_observations, docs[half:])
        proc = spawn_bridge(stream)
        await wait_for(lambda: complete(stream, regions, hours) and all(
            stream.latest(r) and pd.Timestamp(stream.latest(r)["origin"]) == pd.Timestamp(docs[-1]["timestamp"])
            for r in regions), timeout_s=120, what="the restarted bridge to catch up")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    check_result(stream, docs, regions, hours)


async def test_redis_stopped_and_restarted_mid_stream(services, tmp_path):
    env = {"REDIS_PORT": "6393", "REDIS_DIR": str(tmp_path / "redis")}
    script("redis.sh", "up", env)
    stream = make_stream("redis://127.0.0.1:6393/0", services["bootstrap"])
    s = stream.settings
    regions = ["a", "b"]
    hours = 72
    docs = observations(regions, hours)
    half = len(docs) // 2
    bridge = Bridge(s)
    task = await start(bridge)
    try:
        await produce(s.kafka_bootstrap, s.topic_observations, docs[:half])
        await wait_for(lambda: complete(stream, regions, hours // 2), what="first half")
        script("redis.sh", "down", env)
        await produce(s.kafka_bootstrap, s.topic_observations, docs[half:])
        await wait_for(lambda: bridge.metrics.counts["retries"] > 0, what="the bridge to notice Redis is gone")
        script("redis.sh", "up", env)
        await wait_for(lambda: complete(stream, regions, hours) and bridge.metrics.counts["forecasts"] >= 4,
                       timeout_s=60, what="catch-up after Redis came back")
        bridge.stop()
        await asyncio.wait_for(task, 60)
        check_result(stream, docs, regions, hours)
    finally:
        bridge.stop()
        if not task.done():
            task.cancel()
        script("redis.sh", "down", env)


async def test_kafka_stopped_and_restarted_mid_stream(services, tmp_path):
    env = {"KAFKA_PORT": "19392", "KAFKA_CONTROLLER_PORT": "19393", "KAFKA_DIR": str(tmp_path / "kafka")}
    script("kafka.sh", "up", env)
    stream = make_stream(services["redis_url"], "127.0.0.1:19392")
    s = stream.settings
    regions = ["a", "b"]
    hours = 72
    docs = observations(regions, hours)
    half = len(docs) // 2
    bridge = Bridge(s)
    task = None
    try:
        task = await start(bridge)
        await produce(s.kafka_bootstrap, s.topic_observations, docs[:half])
        await wait_for(lambda: complete(stream, regions, hours // 2), what="first half")
        script("kafka.sh", "down", env)
        await asyncio.sleep(2)
        assert not task.done()
        script("kafka.sh", "up", env)
        await produce(s.kafka_bootstrap, s.topic_observations, docs[half:])
        await wait_for(lambda: complete(stream, regions, hours) and all(
            pd.Timestamp(stream.latest(r)["origin"]) == pd.Timestamp(docs[-1]["timestamp"]) for r in regions),
            timeout_s=90, what="catch-up after Kafka came back")
        bridge.stop()
        await asyncio.wait_for(task, 60)
        check_result(stream, docs, regions, hours)
    finally:
        bridge.stop()
        if task is not None and not task.done():
            task.cancel()
        script("kafka.sh", "down", env)
        with stream.redis as r:
            keys = list(r.scan_iter(f"{s.redis_key_prefix}:*"))
            if keys:
                r.delete(*keys)


def regions_on_every_partition(n_partitions: int, per_partition: int = 2) -> list[str]:
    """Region names whose keys land on every partition (the producer's own partitioner)."""
    chosen: dict[int, list[str]] = {p: [] for p in range(n_partitions)}
    i = 0
    while any(len(v) < per_partition for v in chosen.values()):
        name = f"region-{i}"
        p = DefaultPartitioner()(name.encode(), list(range(n_partitions)), list(range(n_partitions)))
        if len(chosen[p]) < per_partition:
            chosen[p].append(name)
        i += 1
    return sorted(r for v in chosen.values() for r in v)


async def test_two_bridges_share_partitions_and_hand_over_on_stop(stream):
    s = stream.settings
    regions = regions_on_every_partition(s.topic_partitions)
    docs = observations(regions, 72)
    first, second = docs[: len(docs) * 2 // 3], docs[len(docs) * 2 // 3 :]
    a, b = Bridge(s), Bridge(s)
    task_a = await start(a)
    task_b = await start(b)
    try:
        await wait_for(lambda: a.assigned and b.assigned and len(a.assigned | b.assigned) == 2 * s.topic_partitions
                       and not a.assigned & b.assigned, what="both bridges to own partitions")
        await produce(s.kafka_bootstrap, s.topic_observations, first)
        await wait_for(lambda: complete(stream, regions, 48), what="first part")
        assert a.metrics.counts["processed"] > 0 and b.metrics.counts["processed"] > 0
        a.stop()
        await asyncio.wait_for(task_a, 60)
        await produce(s.kafka_bootstrap, s.topic_observations, second)
        await wait_for(lambda: complete(stream, regions, 72), timeout_s=60, what="the survivor to take over")
        await wait_for(lambda: all(pd.Timestamp(stream.latest(r)["origin"]) == pd.Timestamp(docs[-1]["timestamp"])
                                   for r in regions), what="latest forecasts")
        assert len(b.assigned) == 2 * s.topic_partitions
    finally:
        for bridge, task in ((a, task_a), (b, task_b)):
            bridge.stop()
            await asyncio.wait_for(task, 60)
    check_result(stream, docs, regions, 72)
    assert a.metrics.counts["processed"] + b.metrics.counts["processed"] >= len(docs)
