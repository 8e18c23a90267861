"""Every endpoint through the ASGI test client (``Gridcast.to_asgi()``), bad input included.

In the test client the model service is an in-process dependency: the same code as
``bentoml serve`` minus the process boundary (that one is tested in test_serve.py).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from starlette.testclient import TestClient

from tests.service.conftest import observations


def test_forecast_lstm_answers_24_points_with_intervals(client):
    r = client.post("/forecast", json={"region": "region-1", "model": "lstm", "horizon": 24})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "lstm" and body["model_version"].startswith("gridcast-lstm-region-1:")
    assert len(body["points"]) == 24 and body["level"] == [80, 95]
    for p in body["points"]:
        assert p["intervals"]["95"]["lower"] <= p["intervals"]["80"]["lower"] <= p["mean"]
        assert p["mean"] <= p["intervals"]["80"]["upper"] <= p["intervals"]["95"]["upper"]
        assert (p["lower"], p["upper"]) == (p["intervals"]["95"]["lower"], p["intervals"]["95"]["upper"])
    steps = pd.DatetimeIndex([p["timestamp"] for p in body["points"]])
    assert (steps[1:] - steps[:-1] == pd.Timedelta("1h")).all()
    assert steps[0] == pd.Timestamp(body["origin"]) + pd.Timedelta("1h")


def test_curl_default_content_type_with_a_json_body_is_accepted(client):
    """``curl -X POST .../forecast -d '{...}'`` sends a form content type: the README's call works."""
    raw = json.dumps({"region": "region-1", "model": "naive", "horizon": 24}).encode()
    r = client.post("/forecast", content=raw, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert len(r.json()["points"]) == 24


def test_second_identical_request_is_served_from_the_cache(client):
    q = {"region": "region-2", "model": "naive", "horizon": 6, "level": [90]}
    first, second = client.post("/forecast", json=q).json(), client.post("/forecast", json=q).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert first["points"] == second["points"] and list(first["points"][0]["intervals"]) == ["90"]


def test_request_history_drives_the_forecast(client, recent_frame):
    hist = recent_frame.iloc[-24 * 8:]
    r = client.post("/forecast", json={"region": "region-1", "model": "naive", "horizon": 3,
                                       "history": observations(hist)})
    body = r.json()
    assert r.status_code == 200 and body["history_source"] == "request"
    assert body["points"][0]["mean"] == pytest.approx(hist["load_mw"].iloc[-168])


def test_short_history_falls_back_and_says_so(client, recent_frame):
    r = client.post("/forecast", json={"region": "region-1", "model": "lstm", "horizon": 4,
                                       "history": observations(recent_frame.iloc[-30:])})
    body = r.json()
    assert r.status_code == 200 and body["fallback"] and body["model"] == "naive"
    assert body["fallback_reason"]


def test_best_picks_the_lowest_validation_mape(client):
    models = client.get("/models").json()["models"]
    mine = [m for m in models if m["region"] == "region-2"]
    best = min(mine, key=lambda m: m["validation_mape"])
    body = client.post("/forecast", json={"region": "region-2", "horizon": 2}).json()
    assert body["requested_model"] == "best" and body["model"] == best["alias"]


def test_forecast_batch_keeps_order(client):
    reqs = [{"region": "region-1", "model": "lstm", "horizon": 2},
            {"region": "region-2", "model": "naive", "horizon": 5}]
    r = client.post("/forecast_batch", json={"requests": reqs})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [(x["region"], len(x["points"])) for x in results] == [("region-1", 2), ("region-2", 5)]


def test_models_lists_served_versions_with_metrics_and_ranges(client):
    models = client.get("/models").json()["models"]
    assert {(m["region"], m["alias"]) for m in models} == {
        (r, a) for r in ("region-1", "region-2") for a in ("naive", "lstm")
    }
    for m in models:
        assert m["validation_mape"] > 0 and m["training_range"]["start"] < m["training_range"]["end"]
        assert m["version"].startswith(f"gridcast-{m['alias']}-{m['region']}:")


def test_recent_returns_the_seeded_tail(client):
    r = client.post("/recent", json={"region": "region-1", "n": 5})
    body = r.json()
    assert r.status_code == 200 and len(body["observations"]) == 5
    assert all(o["load_mw"] > 0 for o in body["observations"])


def test_health_endpoints(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_openapi_documents_the_forecast_api(client):
    spec = client.get("/docs.json").json()
    assert {"/forecast", "/forecast_batch", "/recent"} <= set(spec["paths"])


def test_admin_observations_feed_the_state(client, recent_frame):
    last = pd.Timestamp(client.post("/recent", json={"region": "region-1", "n": 1}).json()["observations"][0]["timestamp"])
    new = recent_frame.iloc[-3:].copy()
    new.index = pd.date_range(last + pd.Timedelta("1h"), periods=3, freq="1h", tz="UTC", name="timestamp")
    r = client.post("/admin/observations", json={"region": "region-1", "observations": observations(new)})
    assert r.status_code == 200 and r.json()["added"] == 3
    body = client.post("/forecast", json={"region": "region-1", "model": "naive", "horizon": 1}).json()
    assert body["history_source"] == "state" and pd.Timestamp(body["origin"]) == new.index[-1]


GOOD = {"region": "region-1", "model": "naive", "horizon": 3}


def _hist(n=30, **change):
    idx = pd.date_range("2024-03-01", periods=n, freq="1h", tz="UTC")
    obs = [{"timestamp": t.isoformat(), "load_mw": 500.0 + i} for i, t in enumerate(idx)]
    for i, value in change.items():
        obs[int(i[1:])] = value
    return obs


BAD = [
    ("unknown-region", dict(GOOD, region="atlantis"), 404, "region"),
    ("model-not-served", dict(GOOD, model="sarimax"), 404, "model"),
    ("unknown-model", dict(GOOD, model="prophet"), 400, "model"),
    ("horizon-zero", dict(GOOD, horizon=0), 400, "horizon"),
    ("horizon-too-long", dict(GOOD, horizon=169), 400, "horizon"),
    ("horizon-not-int", dict(GOOD, horizon="soon"), 400, "horizon"),
    ("level-100", dict(GOOD, level=[100]), 400, "level[0]"),
    ("level-repeated", dict(GOOD, level=[80, 80]), 400, "level"),
    ("missing-region", {"horizon": 3}, 400, "region"),
    ("extra-field", dict(GOOD, colour="red"), 400, "colour"),
    ("off-grid", dict(GOOD, history=_hist(i5=dict(_hist()[5], timestamp="2024-03-01T05:30:00+00:00"))),
     422, "history[5].timestamp"),
    ("not-increasing", dict(GOOD, history=_hist(i5=_hist()[3])), 422, "history[5].timestamp"),
    ("naive-timestamp", dict(GOOD, history=_hist(i0={"timestamp": "2024-03-01T00:00:00", "load_mw": 1.0})),
     400, "history[0].timestamp"),
    ("negative-history-too-short", dict(GOOD, history=_hist(n=5)), 422, "history"),
    ("history-too-long", dict(GOOD, history=_hist(n=24 * 7 * 8 + 1)), 400, "history"),
    ("columnar-unequal", dict(GOOD, history={"start": "2024-03-01T00:00:00+00:00", "load_mw": [1.0, 2.0],
                                             "temperature_c": [3.0]}), 422, "history"),
    ("weather-before-origin", dict(GOOD, history=_hist(), weather=[
        {"timestamp": "2024-03-01T00:00:00+00:00", "temperature_c": 20.0}]), 422, "weather[0].timestamp"),
]


@pytest.mark.parametrize(("body", "status", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gets_4xx_with_reason(client, body, status, field):
    r = client.post("/forecast", json=body)
    assert r.status_code == status, r.text
    err = r.json()
    assert set(err) == {"error", "detail", "field"} and err["field"] == field and err["detail"]
    assert "Traceback" not in r.text


RAW_BAD = [
    ("nan", b'{"region": "region-1", "horizon": 3, "history": [{"timestamp": "2024-03-01T00:00:00Z", "load_mw": NaN}]}',
     "application/json", 400, "history[0].load_mw"),
    ("infinity", b'{"region": "region-1", "horizon": 3, "history": [{"timestamp": "2024-03-01T00:00:00Z", '
     b'"load_mw": Infinity}]}', "application/json", 400, "history[0].load_mw"),
    ("broken-json", b'{"region": ', "application/json", 400, None),
    ("pickle", b"\x80\x04\x95\x00", "application/vnd.bentoml+pickle", 415, "content-type"),
    ("octet-stream", b"\x80\x04\x95\x00", "application/octet-stream", 415, "content-type"),
    ("form", b"region=region-1", "application/x-www-form-urlencoded", 415, "content-type"),
    ("form-broken-json", b"{region", "application/x-www-form-urlencoded", 415, "content-type"),
    ("pickle-looking-like-json", b'{"region": "region-1", "horizon": 3}', "application/vnd.bentoml+pickle",
     415, "content-type"),
    ("too-big", b'{"region": "' + b"x" * (5 * 1024 * 1024) + b'"}', "application/json", 413, "body"),
]


@pytest.mark.parametrize(("raw", "ctype", "status", "field"), [b[1:] for b in RAW_BAD], ids=[b[0] for b in RAW_BAD])
def test_bad_bodies_get_4xx_with_reason(client, raw, ctype, status, field):
    r = client.post("/forecast", content=raw, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    err = r.json()
    assert set(err) == {"error", "detail", "field"} and err["field"] == field


def test_batch_bounds_and_errors_name_the_request(client):
    from gridcast.settings import get_settings

    n = get_settings().max_batch_requests + 1
    r = client.post("/forecast_batch", json={"requests": [GOOD] * n})
    assert r.status_code == 400 and r.json()["field"] == "requests"
    r = client.post("/forecast_batch", json={"requests": [GOOD, dict(GOOD, region="atlantis")]})
    assert r.status_code == 404 and r.json()["field"] == "requests[1].region"


def test_recent_unknown_region_is_404(client):
    r = client.post("/recent", json={"region": "atlantis"})
    assert r.status_code == 404 and r.json()["field"] == "region"


def test_admin_needs_the_api_key_when_one_is_set(served_env, app, monkeypatch):
    from gridcast.settings import get_settings

    monkeypatch.setenv("GRIDCAST_API_KEY", "s3cret")
    get_settings.cache_clear()
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            body = {"region": "region-1", "observations": _hist(n=2)}
            denied = c.post("/admin/observations", json=body)
            assert denied.status_code == 401 and denied.json()["field"] == "x-api-key"
            allowed = c.post("/admin/observations", json=body, headers={"x-api-key": "s3cret"})
            assert allowed.status_code == 200, allowed.text
    finally:
        get_settings.cache_clear()


def test_no_cors_headers_by_default(client):
    r = client.options("/forecast", headers={"origin": "http://evil.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}
    # CORS closed: the preflight is not approved (no CORS middleware answers it), and says so
    assert r.status_code == 405, (r.status_code, r.text)
    assert not any(k.lower().startswith("access-control-") for k in r.headers), dict(r.headers)


@pytest.mark.parametrize(
    "body",
    [{"region": "region-1", "observations": [{"timestamp": "2024-03-01T00:00:00Z", "load_mw": "lots"}]},
     {"region": "region-1", "observations": "none"}, ["not", "an", "object"]],
    ids=["bad-value", "not-a-list", "not-an-object"],
)
def test_admin_observations_bad_input_is_400(client, body):
    r = client.post("/admin/observations", json=body)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error", "detail", "field"}
