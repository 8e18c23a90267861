"""The service and the bridge answer from one forecast path: same history, same forecast."""

from __future__ import annotations

import pytest

from tests.service.conftest import observations


async def test_the_bridges_batched_forecasts_equal_the_http_answers(client, recent_frame):
    from gridcast.settings import Settings
    from streaming.forecasting import InProcessForecaster, Job

    histories = {"region-1": recent_frame.iloc[-200:], "region-2": recent_frame.iloc[-230:-30]}
    bridge = InProcessForecaster(Settings())
    jobs = [Job(region, 24, (80, 95), model="lstm") for region in histories]
    from_bridge = await bridge.forecast(jobs, histories)  # both regions in one batched call
    for job, got in zip(jobs, from_bridge, strict=True):
        history = histories[job.region][["load_mw", "temperature_c"]]
        r = client.post("/forecast", json={"region": job.region, "model": "lstm", "horizon": 24,
                                           "history": observations(history)})
        assert r.status_code == 200, r.text
        http = r.json()
        assert (got["model"], got["fallback"], http["fallback"]) == ("lstm", False, False)
        assert got["origin"] == http["origin"] and got["model_version"] == http["model_version"]
        for a, b in zip(got["points"], http["points"], strict=True):
            assert a["timestamp"] == b["timestamp"]
            assert a["mean"] == pytest.approx(b["mean"], abs=1e-6)
            for level, bounds in a["intervals"].items():
                assert bounds == pytest.approx(b["intervals"][level], abs=1e-6)


def test_columnar_and_object_payloads_answer_alike_over_http(client, recent_frame):
    history = recent_frame.iloc[-200:][["load_mw", "temperature_c"]]
    objects = {"region": "region-1", "model": "lstm", "horizon": 48, "history": observations(history)}
    columnar = dict(objects, history={"start": history.index[0].isoformat(), "step": "1h",
                                      "load_mw": history["load_mw"].tolist(),
                                      "temperature_c": history["temperature_c"].tolist()})
    a, b = (client.post("/forecast", json=body) for body in (objects, columnar))
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    a, b = a.json(), b.json()
    for doc in (a, b):
        doc.pop("issued_at")
        doc.pop("cached")
    assert a == b and not a["fallback"]


def test_a_cache_hit_is_the_miss_that_filled_it(client):
    query = {"region": "region-1", "model": "lstm", "horizon": 24}
    first, second = client.post("/forecast", json=query), client.post("/forecast", json=query)
    assert first.status_code == second.status_code == 200
    a, b = first.json(), second.json()
    assert (a["cached"], b["cached"]) == (False, True)
    a.pop("cached")
    b.pop("cached")
    assert a == b
