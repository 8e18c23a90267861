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


@pytest.fixture(scope="module")
def served_lstm(tmp_path_factory) -> tuple[str, pd.DataFrame, str]:
    """A served LSTM for one synthetic region in a private BentoML home: (home, table, region).

    Trained for two epochs: the test needs the production model path, not a good model.
    """
    import os

    from gridcast.settings import Settings
    from training.data.synthetic import generate
    from training.train_cli import train_models

    home = tmp_path_factory.mktemp("bentoml")
    df, meta = generate(days=40, regions=1, seed=7)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTOML_HOME", str(home))
        for name in [n for n in os.environ if n.startswith("GRIDCAST_")]:
            mp.delenv(name)
        outcomes = train_models(df, meta, aliases=["lstm"], quick=True, settings=Settings(lstm_epochs=2))
    assert outcomes, "no LSTM trained"
    return str(home), df, str(df["region"].iloc[0])


def stream_docs(table: pd.DataFrame, region: str, hours: int) -> list[dict]:
    """The table's last ``hours`` rows of ``region`` as observation messages (what replay sends)."""
    from streaming.replay import messages

    rows = table[table["region"] == region].sort_values("timestamp").tail(hours)
    return [json.loads(value) for _, _, value in messages(rows)]


@pytest.mark.parametrize("via", ["naive", "inprocess"])
async def test_observations_give_each_region_one_forecast_per_point_and_requests_get_answers(
    stream, via, request, monkeypatch
):
    hours = 24 * 8  # the LSTM's look-back (7 days) and more
    regions = ["north", "south", "east"]
    docs = observations(regions, hours=hours)
    served = None
    if via == "inprocess":
        home, table, served = request.getfixturevalue("served_lstm")
        monkeypatch.setenv("BENTOML_HOME", home)
        regions = [served, "south", "east"]  # one region with a served LSTM, two falling back
        docs = [d for d in docs if d["region"] != "north"] + stream_docs(table, served, hours)
        docs.sort(key=lambda d: d["timestamp"])
    s = stream.settings.model_copy(update={"forecast_via": via, "stream_model": "lstm" if served else "best"})
    bridge = Bridge(s)
    task = await start(bridge)
    last = {r: pd.Timestamp(max(d["timestamp"] for d in docs if d["region"] == r)) for r in regions}
    try:
        await produce(s.kafka_bootstrap, s.topic_observations, docs)
        await wait_for(lambda: all(stream.latest(r) and pd.Timestamp(stream.latest(r)["origin"]) == last[r]
                                   for r in regions), timeout_s=120, what="a forecast from the last point per region")
        await produce(s.kafka_bootstrap, s.topic_requests,
                      [{"request_id": f"req-{i}", "region": regions[i % 3], "model": "best", "horizon": 6,
                        "level": [80]} for i in range(5)])
        await wait_for(lambda: bridge.metrics.counts["requests_answered"] == 5, what="the requests answered")
        answers = await consume_all(  # everything published so far: the answers and every stream forecast
            s.kafka_bootstrap, s.topic_forecasts, timeout_s=120,
            until=lambda ms: {json.loads(m.value).get("request_id") for m in ms} >= {f"req-{i}" for i in range(5)}
            and sum(json.loads(m.value)["request_id"] is None for m in ms) >= bridge.metrics.counts["forecasts"],
        )
    finally:
        await stop(bridge, task)

    for region in regions:
        assert stream.count(region) == hours
        latest = stream.latest(region)
        assert pd.Timestamp(latest["origin"]) == last[region]
        assert len(latest["points"]) == s.stream_horizon
        assert pd.Timestamp(latest["points"][0]["timestamp"]) == last[region] + pd.Timedelta("1h")
        assert latest["level"] == [80, 95] and latest["points"][0]["lower"] <= latest["points"][0]["mean"]
    if served:  # the production path: the served LSTM answers its region, the others fall back
        assert stream.latest(served)["model"] == "lstm" and not stream.latest(served)["fallback"]
        assert all(stream.latest(r)["fallback"] for r in regions if r != served)
    published = [json.loads(m.value) for m in answers]
    assert all(m.key.decode() == json.loads(m.value)["region"] for m in answers)
    # no duplicates on the topic: one stream forecast per (region, origin), one answer per request
    stream_fc = [(p["region"], p["origin"]) for p in published if p["request_id"] is None]
    assert len(stream_fc) == len(set(stream_fc)), "a stream forecast was published twice"
    assert {r for r, _ in stream_fc} == set(regions)
    assert len(stream_fc) == bridge.metrics.counts["forecasts"]
    ids = [p["request_id"] for p in published if p["request_id"] is not None]
    assert sorted(ids) == [f"req-{i}" for i in range(5)], "a request unanswered or answered twice"
    answer = next(p for p in published if p["request_id"] == "req-1")
    assert answer["region"] == regions[1] and len(answer["points"]) == 6 and answer["level"] == [80]
    snap = bridge.metrics.snapshot()
    assert snap["processed"] == len(docs) + 5 and snap["dead_lettered"] == 0 and snap["lag"] == 0


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
