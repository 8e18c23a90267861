"""Weather-forecast vintages through the bridge, on the real broker and Redis."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from gridcast.schema import LOAD, TEMPERATURE
from gridcast.weather import parse_vintage
from streaming.bridge import Bridge
from tests.streaming.streamkit import consume_all, produce, wait_for
from tests.streaming.test_bridge import start, stop, stream_docs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served_lstm(tmp_path_factory) -> tuple[str, pd.DataFrame, str]:
    """A quick served LSTM (it takes future temperature) for one synthetic region: (home, table, region)."""
    from gridcast.settings import Settings
    from training.data.synthetic import generate
    from training.train_cli import train_models

    home = tmp_path_factory.mktemp("bentoml-weather")
    df, meta = generate(days=40, regions=1, seed=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTOML_HOME", str(home))
        for name in [n for n in os.environ if n.startswith("GRIDCAST_")]:
            mp.delenv(name)
        assert train_models(df, meta, aliases=["lstm"], quick=True, settings=Settings(lstm_epochs=2))
    return str(home), df, str(df["region"].iloc[0])


def vintage_doc(region: str, last: pd.Timestamp, temps: np.ndarray) -> dict:
    stamps = pd.date_range(last + pd.Timedelta("1h"), periods=len(temps), freq="h")
    return {"region": region, "issued_at": last.isoformat(),
            "points": [{"timestamp": t.isoformat(), "temperature_c": float(v)} for t, v in zip(stamps, temps)]}


async def test_a_vintage_changes_the_next_forecast_equals_the_in_process_one_and_is_named(
    stream, served_lstm, monkeypatch
):
    from gridcast.catalog import ModelCatalog
    from gridcast.forecast import ForecastCore, ModelRunner, Query
    from gridcast.series import Series
    from gridcast.store import load_forecaster, served_models

    home, table, region = served_lstm
    monkeypatch.setenv("BENTOML_HOME", home)
    s = stream.settings.model_copy(update={"forecast_via": "inprocess", "stream_model": "lstm"})
    docs = stream_docs(table, region, 24 * 8)
    last = pd.Timestamp(docs[-1]["timestamp"])
    # a heat wave the observed temperatures did not announce: +12 °C on the last day's
    temps = np.array([d["temperature_c"] for d in docs[-24:]]) + 12.0
    vintage = vintage_doc(region, last, temps)
    bad = [b"{not json", json.dumps({**vintage, "issued_at": "tomorrow"}).encode(),
           json.dumps({**vintage, "points": [{"timestamp": vintage["points"][0]["timestamp"],
                                              "temperature_c": 400.0}]}).encode()]
    bridge = Bridge(s)
    task = await start(bridge)
    try:
        await produce(s.kafka_bootstrap, s.topic_observations, docs)
        await wait_for(lambda: stream.latest(region) and pd.Timestamp(stream.latest(region)["origin"]) == last,
                       timeout_s=120, what="the forecast from the last point")
        before = stream.latest(region)
        await produce(s.kafka_bootstrap, s.topic_weather, [vintage, *bad])
        with stream.redis as r:
            key = f"{s.redis_key_prefix}:weather:{region}"
            await wait_for(lambda: r.exists(key), what="the vintage in Redis")
        await produce(s.kafka_bootstrap, s.topic_requests,
                      [{"request_id": "after-vintage", "region": region, "model": "lstm", "horizon": 24}])
        published = await consume_all(s.kafka_bootstrap, s.topic_forecasts, timeout_s=120,
                                       until=lambda ms: any(b"after-vintage" in m.value for m in ms))
        dead = await consume_all(s.kafka_bootstrap, s.topic_dead_letter, until=lambda ms: len(ms) >= len(bad))
    finally:
        await stop(bridge, task)

    answer = next(json.loads(m.value) for m in published if b"after-vintage" in m.value)
    assert before["weather_issued_at"] is None
    assert answer["weather_issued_at"] == last.isoformat() and not answer["fallback"]
    got = np.array([p["mean"] for p in answer["points"]])
    assert not np.allclose(got, [p["mean"] for p in before["points"]][:24], rtol=1e-4), "the vintage changed nothing"

    # the same forecast in this process, given the history and those covariates explicitly
    stored = served_models()
    runner = ModelRunner(ModelCatalog.from_store(stored), {(m.region, m.alias): load_forecaster(m.tag) for m in stored})
    frame = pd.DataFrame({LOAD: [d["load_mw"] for d in docs], TEMPERATURE: [d["temperature_c"] for d in docs]},
                         index=pd.DatetimeIndex(pd.to_datetime([d["timestamp"] for d in docs], utc=True)))
    weather = parse_vintage(vintage, step=3600, bounds={}).weather
    core = ForecastCore(settings=s, catalog=runner.catalog, runner=runner)
    (expected,) = core.forecast([Query(region, 24, "lstm", (80, 95), history=Series.from_frame(frame, step=3600),
                                       weather=weather)])
    np.testing.assert_allclose(got, [p["mean"] for p in expected["points"]], rtol=1e-6)
    assert [p["upper"] for p in answer["points"]] == pytest.approx([p["upper"] for p in expected["points"]], rel=1e-6)

    reasons = sorted(dict(m.headers)["reason"].decode() for m in dead)
    assert all(dict(m.headers)["source.topic"].decode() == s.topic_weather for m in dead)
    assert any("not JSON" in r for r in reasons) and any("issued_at" in r for r in reasons)
    assert any("outside" in r for r in reasons)


def test_an_older_vintage_never_replaces_a_newer_one(stream):
    from gridcast.state_redis import RedisStateStore
    from gridcast.weather import parse_vintage

    last = pd.Timestamp("2024-03-01T00:00:00Z")
    newer = parse_vintage(vintage_doc("north", last, np.arange(3.0)), step=3600, bounds={})
    older = parse_vintage(vintage_doc("north", last - pd.Timedelta("6h"), np.arange(9.0)), step=3600, bounds={})
    store = RedisStateStore(stream.settings.redis_url, prefix=stream.settings.redis_key_prefix, weather_refresh_s=0)
    try:
        assert store.latest_weather("north") is None
        assert store.set_weather(newer) and not store.set_weather(older) and not store.set_weather(newer)
        assert store.latest_weather("north").issued_at == newer.issued_at
    finally:
        store.close()
