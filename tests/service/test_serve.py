"""``bentoml serve`` in a subprocess: concurrent LSTM requests are computed in batches.

Each request brings its own history (distinct end times), so every answer can be
checked against its own request: the forecast starts right after that request's last
observation and equals the same LSTM's in-process forecast for that history.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.service.conftest import observations
from tests.support import served_service

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _serve(served_home, tmp_path_factory, extra_env: dict[str, str]) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCAST_")}
    env.update(BENTOML_HOME=str(served_home), GRIDCAST_UI_MOUNT="false", **extra_env)
    with served_service(env, tmp_path_factory.mktemp("serve") / "serve.log") as url:
        yield url


@pytest.fixture(scope="module")
def served_url(served_home, tmp_path_factory) -> Iterator[str]:
    yield from _serve(served_home, tmp_path_factory, {})


def _batch_metric(text: str) -> tuple[float, float]:
    """(sum, count) of gridcast_model_batch_size: model calls, and the batches they ran in."""
    def value(name: str) -> float:
        m = re.search(rf'^{name}{{alias="any"}} ([0-9.e+]+)$', text, re.M)
        return float(m.group(1)) if m else 0.0

    return value("gridcast_model_batch_size_sum"), value("gridcast_model_batch_size_count")


def test_concurrent_lstm_requests_are_batched_and_matched(served_url, served_home, recent_frame, monkeypatch):
    n = 12
    histories = [recent_frame.iloc[-(24 * 8 + i): len(recent_frame) - i] for i in range(n)]
    queries = [{"region": "region-1", "model": "lstm", "horizon": 6 + i, "history": observations(h)}
               for i, h in enumerate(histories)]

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served_url, timeout=120) as client:
            return await asyncio.gather(*(client.post("/forecast", json=q) for q in queries))

    before = _batch_metric(httpx.get(f"{served_url}/metrics").text)
    responses = asyncio.run(fire())
    after = _batch_metric(httpx.get(f"{served_url}/metrics").text)

    calls, batches = after[0] - before[0], after[1] - before[1]
    assert calls == n, "every request reached the model once"
    assert batches < n, f"{n} concurrent requests were computed in {batches:.0f} batches: some batch had >1"

    monkeypatch.setenv("BENTOML_HOME", str(served_home))
    from gridcast.store import load_forecaster, served_models

    (lstm,) = [m for m in served_models() if (m.region, m.alias) == ("region-1", "lstm")]
    model = load_forecaster(lstm.tag)
    for i, (r, hist) in enumerate(zip(responses, histories, strict=True)):
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["model"], body["fallback"]) == ("lstm", False)
        assert len(body["points"]) == 6 + i
        assert pd.Timestamp(body["origin"]) == hist.index[-1]
        assert pd.Timestamp(body["points"][0]["timestamp"]) == hist.index[-1] + pd.Timedelta("1h")
        expected = model.predict(6 + i, None, (80, 95), history=hist[["load_mw", "temperature_c"]])
        got = np.array([p["mean"] for p in body["points"]])
        np.testing.assert_allclose(got, expected["mean"].to_numpy(), rtol=1e-3)


def test_metrics_endpoint_exports_gridcast_counters(served_url):
    httpx.post(f"{served_url}/forecast", json={"region": "region-2", "model": "naive", "horizon": 2}, timeout=60)
    text = httpx.get(f"{served_url}/metrics").text
    assert "gridcast_cache_misses_total" in text
    # the forecast routes' own latency histogram (they bypass BentoML's request metrics)
    assert 'gridcast_http_request_duration_seconds_count{route="/forecast",status="200"}' in text
    httpx.get(f"{served_url}/models", timeout=60)  # BentoML's routes keep BentoML's metrics
    assert "bentoml_service_request_total" in httpx.get(f"{served_url}/metrics").text


def test_served_errors_are_json_without_traces(served_url):
    r = httpx.post(f"{served_url}/forecast", content=b"\x80\x04K\x01.",
                   headers={"content-type": "application/vnd.bentoml+pickle"})
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    r = httpx.post(f"{served_url}/forecast", json={"region": "region-1", "horizon": -1})
    assert r.status_code == 400 and r.json()["field"] == "horizon" and "Traceback" not in r.text


@pytest.fixture(scope="module", params=["queue", "inflight"])
def overloaded_url(request, served_home, tmp_path_factory) -> Iterator[str]:
    """A service that lets at most 2 model calls wait, or answers at most 2 forecast requests
    at once: either way a burst is refused in part, at once."""
    limits = ({"GRIDCAST_MAX_QUEUE_CALLS": "2", "GRIDCAST_MAX_BATCH_SIZE": "2"} if request.param == "queue"
              else {"GRIDCAST_MAX_INFLIGHT_REQUESTS": "2", "GRIDCAST_MAX_QUEUE_CALLS": "1000"})
    yield from _serve(served_home, tmp_path_factory, limits)


def test_overloaded_model_service_answers_503_not_500(overloaded_url, recent_frame):
    queries = [{"region": "region-1", "model": "lstm", "horizon": 24,
                "history": observations(recent_frame.iloc[-(200 + i): len(recent_frame) - i])} for i in range(16)]

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=overloaded_url, timeout=120) as client:
            return await asyncio.gather(*(client.post("/forecast", json=q) for q in queries))

    responses = asyncio.run(fire())
    statuses = sorted({r.status_code for r in responses})
    assert set(statuses) <= {200, 503}, statuses
    refused = [r for r in responses if r.status_code == 503]
    assert refused, "a 16-request burst with room for 2 waiting calls must be refused in part"
    assert any(r.status_code == 200 for r in responses)
    for r in refused:
        assert r.json()["error"] == "model_unavailable" and r.headers["retry-after"] == "1"
