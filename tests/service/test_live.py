"""The service's half of the loop: served forecasts scored by posted actuals; a hot swap under load."""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from tests.service.conftest import observations


def live_of(client: TestClient, region: str, alias: str) -> dict:
    return next(m["live"] for m in client.get("/models").json()["models"] if (m["region"], m["alias"]) == (region, alias))


def test_embedded_posting_actuals_after_a_forecast_fills_live_in_models(client, service_data):
    assert live_of(client, "region-1", "lstm") == {"n": 0, "windows": {}}
    fc = client.post("/forecast", json={"region": "region-1", "model": "lstm", "horizon": 24}).json()
    assert fc["history_source"] in ("model", "state") and fc["weather_issued_at"] is None
    stamps = pd.DatetimeIndex([p["timestamp"] for p in fc["points"]])[:6]
    rng = np.random.default_rng(3)
    actual = np.array([p["mean"] for p in fc["points"][:6]]) * (1 + rng.normal(0, 0.05, 6))
    frame = pd.DataFrame({"load_mw": actual, "temperature_c": 20.0}, index=stamps)
    posted = client.post("/admin/observations", json={"region": "region-1", "observations": observations(frame)})
    assert posted.status_code == 200 and posted.json()["scored"] == 6

    live = live_of(client, "region-1", "lstm")
    mean = np.array([p["mean"] for p in fc["points"][:6]])
    day = live["windows"]["24h"]
    assert live["n"] == 6 and day["n"] == 6
    assert day["mape"] == pytest.approx(np.mean(np.abs(mean - actual) / actual) * 100, rel=1e-5)
    assert day["mae"] == pytest.approx(np.mean(np.abs(mean - actual)), rel=1e-5)
    assert day["bias"] == pytest.approx(np.mean(mean - actual), rel=1e-5, abs=1e-6)
    lo = np.array([p["intervals"]["80"]["lower"] for p in fc["points"][:6]])
    hi = np.array([p["intervals"]["80"]["upper"] for p in fc["points"][:6]])
    assert day["coverage"]["80"] == pytest.approx(np.mean((lo <= actual) & (actual <= hi)))
    assert set(day["bands"]) == {"1-6"}
    assert live_of(client, "region-1", "naive")["n"] == 0  # only what was served is scored
    from prometheus_client import REGISTRY, generate_latest

    gauges = generate_latest(REGISTRY).decode()  # what /metrics exports (BentoML's route adds its own)
    assert 'gridcast_live_mape{model="lstm",region="region-1",window="24h"}' in gauges

    again = client.post("/admin/observations", json={"region": "region-1", "observations": observations(frame)})
    assert again.json()["added"] == 0 and live_of(client, "region-1", "lstm") == live  # a replay changes nothing


def _promote_copy_of(tag: str, mape: float) -> str:
    """Save the model under ``tag`` again as a new version with a better validation MAPE (so it is promoted)."""
    import bentoml

    from gridcast.store import load_forecaster, model_store, save_model

    meta = dict(bentoml.models.get(tag, _model_store=model_store()).info.metadata)
    meta["validation"] = {**meta.get("validation", {}), "mape": mape}
    result = save_model(load_forecaster(tag), region=meta["region"], metadata=meta)
    assert result.promoted, result.reason
    return result.tag


def test_hot_swap_under_concurrent_load_fails_nothing_and_answers_name_the_new_version(
    served_home, app, tmp_path, monkeypatch
):
    from gridcast.settings import get_settings

    home = tmp_path / "bentoml"
    shutil.copytree(served_home, home)  # the session's store stays as other tests expect it
    monkeypatch.setenv("BENTOML_HOME", str(home))
    monkeypatch.setenv("GRIDCAST_SERVED_POLL_S", "0.2")
    get_settings.cache_clear()
    seen: list[list[tuple[int, str]]] = [[] for _ in range(6)]
    stop = threading.Event()

    def load(k: int, client: TestClient) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            r = client.post("/forecast", json={"region": "region-1", "model": "naive", "horizon": 1 + (k * 7 + i) % 24})
            seen[k].append((r.status_code, r.json().get("model_version", r.text)))

    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            old = client.post("/forecast", json={"region": "region-1", "model": "naive", "horizon": 1}).json()
            threads = [threading.Thread(target=load, args=(k, client)) for k in range(len(seen))]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 60
            while sum(map(len, seen)) < 30 and time.monotonic() < deadline:
                time.sleep(0.05)
            new_tag = _promote_copy_of(old["model_version"], mape=0.001)
            while time.monotonic() < deadline and not all(s and s[-1][1] == new_tag for s in seen):
                time.sleep(0.05)
            marks = [len(s) for s in seen]
            while time.monotonic() < deadline and any(len(s) < m + 5 for s, m in zip(seen, marks)):
                time.sleep(0.05)  # a few more answers each after the swap
            stop.set()
            for t in threads:
                t.join(timeout=30)
            models = {m["alias"]: m["version"] for m in client.get("/models").json()["models"]
                      if m["region"] == "region-1"}
    finally:
        stop.set()
        get_settings.cache_clear()

    answers = [a for s in seen for a in s]
    assert [a for a in answers if a[0] != 200] == [], "a request failed during the swap"
    assert {v for _, v in answers} == {old["model_version"], new_tag}
    for s in seen:  # per client, in order: the old version, then only the new one
        versions = [v for _, v in s]
        first_new = versions.index(new_tag)
        assert set(versions[first_new:]) == {new_tag} and first_new > 0
    assert models["naive"] == new_tag


def test_shutdown_stops_the_served_pointer_watcher(served_env, app, monkeypatch):
    """A service's lifespan ends with its watcher: none keeps polling the store and Redis after it."""
    from gridcast.settings import get_settings
    from service.service import _serving

    monkeypatch.setenv("GRIDCAST_SERVED_POLL_S", "0.05")
    get_settings.cache_clear()
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/readyz").status_code == 200
            watcher = _serving[0].watcher
            assert watcher.is_alive()
        watcher.join(timeout=5)
        assert not watcher.is_alive()
    finally:
        get_settings.cache_clear()
