"""At least once, proven: kill -9, Redis and Kafka restarts, two bridges in one group,
and a publish that fails after the Redis write.

Each test streams N observations and then checks the promises: Redis holds exactly
the rows produced, each with its produced value (none lost, none extra), every
region's latest forecast starts at its last observation, and where it matters the
forecasts topic and the group's committed offsets are checked too. Restarted services
are PRIVATE instances (own free ports and dirs).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
from aiokafka.partitioner import DefaultPartitioner
from tests.streaming.streamkit import (ROOT, committed_offsets, consume_all, end_offsets, held, make_stream,
                                      observations, produce, produced, script, wait_for)
from tests.support import free_port

from streaming.bridge import Bridge

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def complete(stream, regions, hours) -> bool:
    return all(stream.count(r) == hours for r in regions)


def check_result(stream, docs, regions, hours) -> None:
    last = pd.Timestamp(docs[-1]["timestamp"])
    for region in regions:
        assert held(stream, region) == produced(docs, region), region  # exactly the rows, with their values
        assert len(produced(docs, region)) == hours
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
    env = {"REDIS_PORT": str(free_port()), "REDIS_DIR": str(tmp_path / "redis")}
    script("redis.sh", "up", env)
    stream = make_stream(f"redis://127.0.0.1:{env['REDIS_PORT']}/0", services["bootstrap"])
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
    env = {"KAFKA_PORT": str(free_port()), "KAFKA_CONTROLLER_PORT": str(free_port()),
           "KAFKA_DIR": str(tmp_path / "kafka")}
    script("kafka.sh", "up", env)
    stream = make_stream(services["redis_url"], f"127.0.0.1:{env['KAFKA_PORT']}")
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
        script("kafka.sh", "down", env)  # returns once the broker process is gone
        assert not task.done()
        script("kafka.sh", "up", env)
        assert not task.done()  # the bridge rode out the outage
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
    # every partition of the topics a bridge consumes: observations, requests, weather vintages
    owned = len((s.topic_observations, s.topic_requests, s.topic_weather)) * s.topic_partitions
    task_a = await start(a)
    task_b = await start(b)
    try:
        await wait_for(lambda: a.assigned and b.assigned and len(a.assigned | b.assigned) == owned
                       and not a.assigned & b.assigned, what="both bridges to own partitions")
        await produce(s.kafka_bootstrap, s.topic_observations, first)
        # rows reach Redis before a batch is counted (after its forecasts): wait on both
        await wait_for(lambda: complete(stream, regions, 48) and a.metrics.counts["processed"] > 0
                       and b.metrics.counts["processed"] > 0, what="first part, through both bridges")
        a.stop()
        await asyncio.wait_for(task_a, 60)
        await produce(s.kafka_bootstrap, s.topic_observations, second)
        await wait_for(lambda: complete(stream, regions, 72), timeout_s=60, what="the survivor to take over")
        await wait_for(lambda: all(pd.Timestamp(stream.latest(r)["origin"]) == pd.Timestamp(docs[-1]["timestamp"])
                                   for r in regions), what="latest forecasts")
        assert len(b.assigned) == owned
    finally:
        for bridge, task in ((a, task_a), (b, task_b)):
            bridge.stop()
            await asyncio.wait_for(task, 60)
    check_result(stream, docs, regions, 72)
    assert a.metrics.counts["processed"] + b.metrics.counts["processed"] >= len(docs)


async def test_publish_failing_after_the_redis_write_moves_no_offset_and_the_batch_is_redelivered(
    stream, monkeypatch
):
    """The one place at-least-once can break: rows in Redis, forecast not published, offset not committed."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError

    s = stream.settings
    regions = ["a", "b"]
    docs = observations(regions, 48)
    first, second = docs[:48], docs[48:]  # 24 hours each
    failing = False
    refused: list[str] = []
    real_send = AIOKafkaProducer.send

    async def send(self, topic, *args, **kwargs):
        if topic == s.topic_forecasts and failing:
            refused.append(topic)
            raise KafkaConnectionError("injected: the forecasts topic cannot be reached")
        return await real_send(self, topic, *args, **kwargs)

    monkeypatch.setattr(AIOKafkaProducer, "send", send)
    a = Bridge(s)
    task_a = await start(a)
    try:
        await produce(s.kafka_bootstrap, s.topic_observations, first)
        ends = await end_offsets(s)
        await wait_for(lambda: committed_offsets(s), what="the group to commit")
        await wait_for(lambda: _equal(committed_offsets(s), ends), what="the first day committed")
        before = await committed_offsets(s)

        failing = True
        await produce(s.kafka_bootstrap, s.topic_observations, second)
        await wait_for(lambda: all(held(stream, r) == produced(docs, r) for r in regions) and len(refused) >= 3,
                       what="the Redis write done and the publish refused three times")
        assert await committed_offsets(s) == before  # written to Redis, not published: not committed
        a.stop()  # while the publish still fails: it leaves without committing
        await asyncio.wait_for(task_a, 60)
    finally:
        a.stop()
        if not task_a.done():
            task_a.cancel()
    assert await committed_offsets(s) == before
    assert a.metrics.counts["retries"] >= 3

    failing = False
    b = Bridge(s)
    task_b = await start(b)
    last = pd.Timestamp(docs[-1]["timestamp"])
    try:
        await wait_for(lambda: all(stream.latest(r) and pd.Timestamp(stream.latest(r)["origin"]) == last
                                   for r in regions) and b.metrics.counts["commits"] > 0, what="the redelivery")
        await wait_for(lambda: _equal(committed_offsets(s), end_offsets(s)), what="everything committed")
    finally:
        b.stop()
        await asyncio.wait_for(task_b, 60)
    # exactly the uncommitted messages came again, once; nothing lost, nothing extra in Redis
    assert b.metrics.counts["consumed"] == len(second) and b.metrics.counts["processed"] == len(second)
    check_result(stream, docs, regions, 48)
    msgs = await consume_all(s.kafka_bootstrap, s.topic_forecasts, timeout_s=30,
                             until=lambda ms: sum(1 for m in ms) >= a.metrics.counts["forecasts"]
                             + b.metrics.counts["forecasts"])
    published = [(json.loads(m.value)["region"], json.loads(m.value)["origin"]) for m in msgs]
    assert len(published) == len(set(published)) == a.metrics.counts["forecasts"] + b.metrics.counts["forecasts"]
    for region in regions:  # the forecast A could not publish, B did, once
        assert published.count((region, last.isoformat())) == 1


async def test_scoring_failing_after_the_forecasts_are_out_moves_no_offset_and_the_batch_is_rescored(
    stream, monkeypatch
):
    """Scoring runs behind a batch's forecasts (overlapping the next batch); the batch commits only once scored."""
    import redis

    from gridcast.scoring import RedisLedger

    s = stream.settings
    regions = ["a", "b"]
    docs = observations(regions, 48)
    first, second = docs[:48], docs[48:]
    failing = False
    refused: list[int] = []
    real_score_many = RedisLedger.score_many

    def score_many(self, actuals):
        if failing:
            refused.append(len(actuals))
            raise redis.ConnectionError("injected: the ledger cannot be reached")
        return real_score_many(self, actuals)

    monkeypatch.setattr(RedisLedger, "score_many", score_many)
    last = pd.Timestamp(docs[-1]["timestamp"])
    a = Bridge(s)
    task_a = await start(a)
    try:
        await produce(s.kafka_bootstrap, s.topic_observations, first)
        ends = await end_offsets(s)
        await wait_for(lambda: _equal(committed_offsets(s), ends), what="the first day committed")
        before, processed = await committed_offsets(s), a.metrics.counts["processed"]

        failing = True
        await produce(s.kafka_bootstrap, s.topic_observations, second)
        await wait_for(lambda: all(stream.latest(r) and pd.Timestamp(stream.latest(r)["origin"]) == last
                                   for r in regions) and len(refused) >= 3,
                       what="the second day's forecasts out and its scoring refused three times")
        assert await committed_offsets(s) == before  # forecast, not scored: not committed
        assert a.metrics.counts["processed"] == processed
        a.stop()  # while scoring still fails: it leaves without committing
        await asyncio.wait_for(task_a, 60)
    finally:
        a.stop()
        if not task_a.done():
            task_a.cancel()
    assert await committed_offsets(s) == before

    failing = False
    b = Bridge(s)
    task_b = await start(b)
    try:
        await wait_for(lambda: _equal(committed_offsets(s), end_offsets(s)), what="everything committed")
    finally:
        b.stop()
        await asyncio.wait_for(task_b, 60)
    assert b.metrics.counts["processed"] == len(second)  # the unscored batch came again, once
    assert b.metrics.counts["scored"] > 0  # and its actuals scored the first day's forecasts
    check_result(stream, docs, regions, 48)


async def _equal(a, b) -> bool:
    """Both sides awaited when they are awaitables (the helpers are coroutines)."""
    a = await a if asyncio.iscoroutine(a) else a
    b = await b if asyncio.iscoroutine(b) else b
    return a == b


async def test_kill_9_one_of_two_bridges_mid_stream_loses_nothing(stream):
    s = stream.settings
    regions = regions_on_every_partition(s.topic_partitions)
    hours = 72
    docs = observations(regions, hours)
    requests = [{"request_id": f"r{i}", "region": regions[i % len(regions)], "horizon": 6} for i in range(12)]
    procs = [spawn_bridge(stream), spawn_bridge(stream)]
    try:
        await wait_for(lambda: _members(s), timeout_s=90, what="both bridges in the group with partitions")

        async def feed() -> None:  # a steady stream, so the kill lands mid-stream
            for i in range(0, len(docs), 24):
                await produce(s.kafka_bootstrap, s.topic_observations, docs[i:i + 24])
                if i // 24 < len(requests):
                    await produce(s.kafka_bootstrap, s.topic_requests, [requests[i // 24]], key_field="request_id")

        feeding = asyncio.create_task(feed())
        await wait_for(lambda: sum(stream.count(r) for r in regions) >= len(docs) // 4, timeout_s=90,
                       what="a quarter of the stream in Redis")
        procs[0].send_signal(signal.SIGKILL)
        procs[0].communicate(timeout=10)
        assert procs[0].returncode == -signal.SIGKILL
        assert not feeding.done() or sum(stream.count(r) for r in regions) < len(docs)  # killed mid-stream
        await feeding
        last = pd.Timestamp(docs[-1]["timestamp"])
        await wait_for(lambda: complete(stream, regions, hours) and all(
            stream.latest(r) and pd.Timestamp(stream.latest(r)["origin"]) == last for r in regions),
            timeout_s=120, what="the survivor to take over and catch up")
        msgs = await consume_all(s.kafka_bootstrap, s.topic_forecasts, timeout_s=120, until=lambda ms: {
            json.loads(m.value)["request_id"] for m in ms} >= {q["request_id"] for q in requests})
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        _, err = procs[1].communicate(timeout=60)
    assert procs[1].returncode == 0, err.decode()[-2000:]
    check_result(stream, docs, regions, hours)
    answered = {json.loads(m.value)["request_id"] for m in msgs}
    assert answered >= {q["request_id"] for q in requests}  # every request answered at least once


async def _members(s) -> bool:
    """True once the group is stable with two members that each own partitions."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    await admin.start()
    try:
        (resp,) = await admin.describe_consumer_groups([s.consumer_group])
    finally:
        await admin.close()
    group = resp.groups[0]
    state, members = group[2], group[5]
    return state == "Stable" and len(members) == 2 and all(len(m[4]) > 0 for m in members)
