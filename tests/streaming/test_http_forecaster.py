"""forecast_via=http: the bridge asks the real service (``bentoml serve`` in a subprocess).

The service reads the observations the bridge has just written to the same Redis, so a
region with a served model is forecast by the service's model from the streamed state;
a region without one gets the bridge's local seasonal naive, flagged as a fallback.
"""

from __future__ import annotations

import asyncio
import os

import numpy as np
import pandas as pd
import pytest
from tests.streaming.streamkit import observations, produce, wait_for

from tests.support import served_service
from streaming.bridge import Bridge
from gridcast.models.base import SeasonalNaive

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def service_url(bento_home, stream, tmp_path):
    from gridcast.store import save_model

    idx = pd.date_range("2024-01-01", periods=24 * 14, freq="h", tz="UTC", name="timestamp")
    frame = pd.DataFrame({"load_mw": 500 + 50 * np.sin(np.arange(len(idx)) * 2 * np.pi / 24)}, index=idx)
    saved = save_model(SeasonalNaive().fit(frame), region="north", metadata={"validation": {"mape": 5.0}})
    env = {**os.environ, "BENTOML_HOME": str(bento_home), "GRIDCAST_REDIS_URL": stream.settings.redis_url,
           "GRIDCAST_REDIS_KEY_PREFIX": stream.settings.redis_key_prefix}
    with served_service(env, tmp_path / "service.log", ready_timeout_s=240) as url:
        yield url, saved.tag


async def test_bridge_forecasts_through_the_service(stream, service_url):
    url, tag = service_url
    s = stream.settings.model_copy(update={"forecast_via": "http", "service_url": url})
    docs = observations(["north", "south"], hours=24 * 8, start="2024-03-01")
    bridge = Bridge(s)
    task = asyncio.create_task(bridge.run())
    try:
        await wait_for(lambda: task.done() or bool(bridge.assigned), what="partitions assigned")
        await produce(s.kafka_bootstrap, s.topic_observations, docs)
        last = pd.Timestamp(docs[-1]["timestamp"])
        await wait_for(lambda: all(stream.latest(r) and pd.Timestamp(stream.latest(r)["origin"]) == last
                                   for r in ("north", "south")), timeout_s=120, what="forecasts for both regions")
    finally:
        bridge.stop()
        await asyncio.wait_for(task, 60)
    north, south = stream.latest("north"), stream.latest("south")
    assert north["model_version"] == tag and not north["fallback"] and north["history_source"] == "state"
    assert south["fallback"] and "south" in south["fallback_reason"] and south["model"] == "naive"
    # same seasonal naive, same streamed history: the service and the local fallback agree
    north_means = [p["mean"] for p in north["points"]]
    expected = [d["load_mw"] for d in docs if d["region"] == "north"][-168:][: s.stream_horizon]
    assert north_means == pytest.approx(expected)
