"""The bridge end to end on a real broker and a real Redis: data, forecasts, dead letters."""

from __future__ import annotations

import asyncio
import json

import pandas as pd
import pytest

from streaming.bridge import Bridge
from tests.streaming.streamkit import consume_all, observations, produce, wait_for

pytestmark = pytest.mark.integration


async def start(bridge: Bridge) -> asyncio.Task:
    task = asyncio.create_task(bridge.run())
    await wait_for(lambda: task.done() or bool(bridge.assigned), timeout_s=60, what="partitions assigned")
    if task.done():
        task.result()  # raises what killed it
    return task


async def stop(bridge: Bridge, task: asyncio.Task) -> None:
    bridge.stop()
    await asyncio.wait_for(task, timeout=60)


async def test_a_day_of_observations_gives_each_region_a_forecast_and_requests_get_answers(stream):
    s = stream.settings
    regions = ["north", "south", "east"]
    docs = observations(regions, hours=24)
    bridge = Bridge(s)
    task = await start(bridge)
    try:
        await produce(s.kafka_bootstrap, s.topic_observations, docs)
        await wait_for(lambda: all(stream.latest(r) for r in regions), what="a latest forecast per region")
        await produce(s.kafka_bootstrap, s.topic_requests,
                      [{"request_id": "req-1", "region": "south", "model": "best", "horizon": 6, "level": [80]}])
        answers = await consume_all(
            s.kafka_bootstrap, s.topic_forecasts,
            until=lambda ms: any(json.loads(m.value).get("request_id") == "req-1" for m in ms),
        )
    finally:
        await stop(bridge, task)

    last = pd.Timestamp(docs[-1]["timestamp"])
    for region in regions:
        assert stream.count(region) == 24
        latest = stream.latest(region)
        assert pd.Timestamp(latest["origin"]) == last
        assert len(latest["points"]) == s.stream_horizon
        assert pd.Timestamp(latest["points"][0]["timestamp"]) == last + pd.Timedelta("1h")
        assert latest["level"] == [80, 95] and latest["points"][0]["lower"] <= latest["points"][0]["mean"]
    published = [json.loads(m.value) for m in answers]
    stream_fc = [p for p in published if p["request_id"] is None]
    assert {p["region"] for p in stream_fc} == set(regions)
    assert all(m.key.decode() == json.loads(m.value)["region"] for m in answers)
    (answer,) = [p for p in published if p["request_id"] == "req-1"]
    assert answer["region"] == "south" and len(answer["points"]) == 6 and answer["level"] == [80]
    snap = bridge.metrics.snapshot()
    assert snap["processed"] == 24 * 3 + 1 and snap["dead_lettered"] == 0 and snap["lag"] == 0


async def test_replayed_messages_change_nothing_and_metrics_are_exported(stream):
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = stream.settings.model_copy(update={"stream_metrics_port": port})
    docs = observations(["north"], hours=30)
    bridge = Bridge(s)
    task = await start(bridge)
    try:
        await produce(s.kafka_bootstrap, s.topic_observations, docs)
        await wait_for(lambda: bridge.metrics.counts["processed"] == 30, what="first pass")
        before = stream.latest("north")
        await produce(s.kafka_bootstrap, s.topic_observations, docs[:10])  # a replay of old points
        await wait_for(lambda: bridge.metrics.counts["processed"] == 40, what="replay consumed")
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        await stop(bridge, task)
    assert stream.count("north") == 30
    assert stream.latest("north") == before  # no new data point completed: no new forecast
    assert bridge.metrics.counts["forecasts"] == 1
    assert 'gridcast_bridge_events_total{event="processed"} 40.0' in text
    assert 'gridcast_bridge_events_total{event="forecasts"} 1.0' in text
    assert "gridcast_bridge_forecast_latency_seconds_count 1.0" in text


BAD = [
    (b"this is not json", "not JSON"),
    (b"[1, 2, 3]", "not a JSON object"),
    (json.dumps({"timestamp": "2024-03-01T00:00:00Z", "load_mw": 1.0}).encode(), "missing field 'region'"),
    (json.dumps({"region": "north", "load_mw": 1.0}).encode(), "missing field 'timestamp'"),
    (json.dumps({"region": "north", "timestamp": "2024-03-01T00:00:00Z"}).encode(), "missing field 'load_mw'"),
    (json.dumps({"region": "north", "timestamp": "2024-03-01T00:00:00Z", "load_mw": "12"}).encode(),
     "field 'load_mw' must be a number"),
    (b'{"region": "north", "timestamp": "2024-03-01T00:00:00Z", "load_mw": NaN}', "field 'load_mw' is not finite"),
    (json.dumps({"region": "north", "timestamp": "2024-03-01T00:00:00Z", "load_mw": -5.0}).encode(),
     "field 'load_mw' = -5.0 is outside"),
    (json.dumps({"region": "north", "timestamp": "2024-03-01T00:00:00Z", "load_mw": 5.0,
                 "temperature_c": 400.0}).encode(), "field 'temperature_c' = 400.0 is outside"),
    (json.dumps({"region": "north", "timestamp": "2099-01-01T00:00:00Z", "load_mw": 5.0}).encode(), "in the future"),
    (json.dumps({"region": "north", "timestamp": "2024-03-01T00:00:00", "load_mw": 5.0}).encode(),
     "needs a UTC offset"),
    (json.dumps({"region": "north", "timestamp": "2024-03-01T00:17:00Z", "load_mw": 5.0}).encode(),
     "not on the stream's 3600 s grid"),
    (json.dumps({"region": "north", "timestamp": "yesterday", "load_mw": 5.0}).encode(), "not ISO 8601"),
]


@pytest.mark.parametrize("bad,reason", BAD, ids=[r for _, r in BAD])
def test_each_bad_message_kind_is_rejected_with_its_reason(bad, reason):
    from streaming.messages import InvalidMessage, parse_observation
    from gridcast.settings import Settings

    with pytest.raises(InvalidMessage, match=reason.replace("(", r"\(").replace("[", r"\[")):
        parse_observation(bad, settings=Settings(), now_s=pd.Timestamp("2024-03-02", tz="UTC").timestamp())


async def test_bad_messages_go_to_the_dead_letter_topic_and_the_stream_goes_on(stream):
    s = stream.settings
    good = observations(["north", "south"], hours=12)
    # interleave: good, bad, good, bad, ... so every bad message has valid neighbours
    mixed: list = []
    for i, doc in enumerate(good):
        mixed.append(doc)
        if i < len(BAD):
            mixed.append(BAD[i][0])
    bad_requests = [
        json.dumps({"region": "north", "horizon": 6}).encode(),  # no request_id
        json.dumps({"request_id": "r", "region": "north", "horizon": 0}).encode(),
    ]
    bridge = Bridge(s)
    task = await start(bridge)
    try:
        await produce(s.kafka_bootstrap, s.topic_observations, mixed)
        await produce(s.kafka_bootstrap, s.topic_requests, bad_requests)
        expected = len(BAD) + len(bad_requests)
        dead = await consume_all(s.kafka_bootstrap, s.topic_dead_letter, until=lambda ms: len(ms) >= expected)
        await wait_for(lambda: bridge.metrics.counts["processed"] == len(good), what="all valid processed")
    finally:
        await stop(bridge, task)

    assert len(dead) == expected
    by_value = {m.value: dict((k, v.decode()) for k, v in m.headers) for m in dead}
    for raw, reason in BAD:
        headers = by_value[raw]  # the original bytes, unchanged
        assert reason in headers["reason"]
        assert headers["source.topic"] == s.topic_observations
        assert int(headers["source.offset"]) >= 0 and int(headers["source.partition"]) in range(s.topic_partitions)
    assert "request_id" in by_value[bad_requests[0]]["reason"]
    assert "horizon" in by_value[bad_requests[1]]["reason"]
    assert stream.count("north") == 12 and stream.count("south") == 12
    assert bridge.metrics.counts["dead_lettered"] == expected
