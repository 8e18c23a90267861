"""The forecast cache against a REAL Redis: hit, miss, Redis stopped mid-test, restarted.

A private ``redis-server`` (free port, no persistence) runs for this module only.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from starlette.testclient import TestClient

from tests.support import free_port

pytestmark = pytest.mark.integration


class PrivateRedis:
    """A redis-server subprocess that can be stopped and started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed (make system-deps)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(served_env, app, private_redis, monkeypatch):
    from gridcast.settings import get_settings

    monkeypatch.setenv("GRIDCAST_REDIS_URL", private_redis.url)
    monkeypatch.setenv("GRIDCAST_REDIS_RETRY_S", "0.2")
    monkeypatch.setenv("GRIDCAST_REDIS_TIMEOUT_S", "0.5")
    get_settings.cache_clear()
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    get_settings.cache_clear()


def _metric(client: TestClient, name: str) -> float:
    # the ASGI test app has no /metrics route; read the same prometheus registry directly
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name)
    return float(value or 0.0)


def test_cache_hit_miss_redis_down_and_back(redis_client, private_redis):
    q = {"region": "region-1", "model": "naive", "horizon": 12}
    misses = _metric(redis_client, "gridcast_cache_misses_total")

    first = redis_client.post("/forecast", json=q)
    assert first.status_code == 200 and first.json()["cached"] is False and first.json()["degraded"] == []
    keys = redis.Redis.from_url(private_redis.url).keys("gridcast:cache:fc:region-1:naive:*")
    assert len(keys) == 1, "the forecast was written to Redis"
    assert _metric(redis_client, "gridcast_cache_misses_total") == misses + 1

    hits = _metric(redis_client, "gridcast_cache_hits_total")
    second = redis_client.post("/forecast", json=q).json()
    assert second["cached"] is True and second["points"] == first.json()["points"]
    assert _metric(redis_client, "gridcast_cache_hits_total") == hits + 1

    other = redis_client.post("/forecast", json=dict(q, horizon=6)).json()
    assert other["cached"] is False, "a different horizon is a different key"

    private_redis.stop()
    down = redis_client.post("/forecast", json=q)
    assert down.status_code == 200, down.text
    body = down.json()
    assert body["cached"] is False and "cache" in body["degraded"] and len(body["points"]) == 12
    assert body["points"] == first.json()["points"], "computed again, same answer"

    private_redis.start()  # an empty Redis on the same port: the cache reconnects by itself
    time.sleep(0.3)  # past redis_retry_s
    again = redis_client.post("/forecast", json=q).json()
    assert again["cached"] is False and again["degraded"] == []
    assert redis_client.post("/forecast", json=q).json()["cached"] is True
