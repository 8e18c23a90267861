"""The forecast cache: a real Redis, a Redis that is down, and the in-memory LRU."""

from __future__ import annotations

import subprocess
import time
import uuid

import pandas as pd
import pytest

from gridcast.cache import (
    AsyncRedisForecastCache,
    InMemoryTTLCache,
    RedisForecastCache,
    cache_key,
    latest_forecast_key,
    make_cache,
)
from tests import support
from gridcast.settings import Settings

@pytest.fixture(scope="module")
def redis_up() -> str:
    return support.redis_up()


@pytest.fixture
def redis_cache(redis_up):
    cache = RedisForecastCache(redis_up, prefix=f"test-{uuid.uuid4().hex}")
    yield cache
    keys = list(cache.client.scan_iter(f"{cache.prefix}*"))
    if keys:
        cache.client.delete(*keys)
    cache.close()


def test_cache_key_normalises_origin_and_level_order():
    a = cache_key("n", "lstm", "v1", pd.Timestamp("2024-01-01 07:00", tz="Asia/Ho_Chi_Minh"), 24, (95, 80))
    b = cache_key("n", "lstm", "v1", "2024-01-01T00:00:00+00:00", 24, [80, 95])
    assert a == b
    assert cache_key("n", "lstm", "v2", "2024-01-01T00:00:00+00:00", 24, [80, 95]) != b
    assert latest_forecast_key("n") != latest_forecast_key("m")


def test_in_memory_cache_expires_and_evicts():
    now = [0.0]
    cache = InMemoryTTLCache(max_entries=2, clock=lambda: now[0])
    cache.set("a", {"v": 1}, ttl_s=10)
    cache.set("b", {"v": 2}, ttl_s=100)
    assert cache.get("a") == {"v": 1}
    now[0] = 11.0
    assert cache.get("a") is None and cache.get("b") == {"v": 2}
    cache.set("c", {"v": 3}, ttl_s=100)
    cache.set("d", {"v": 4}, ttl_s=100)  # evicts the least recently used ("b")
    assert cache.get("b") is None and cache.get("d") == {"v": 4}


def test_in_memory_cache_is_bounded_by_bytes():
    """Large answers evict the oldest ones once the byte bound is reached."""
    big = {"points": [{"mean": float(i), "lower": 0.0, "upper": 1.0} for i in range(200)]}
    one = len(__import__("orjson").dumps(big))
    cache = InMemoryTTLCache(max_entries=1000, max_bytes=3 * one + 10)
    for k in "abcde":
        cache.set(k, big, ttl_s=100)
    assert cache.bytes <= 3 * one + 10
    assert [cache.get(k) is not None for k in "abcde"] == [False, False, True, True, True]
    cache.set("c", big, ttl_s=100)  # overwriting an entry does not count it twice
    assert cache.bytes == 3 * one


def test_redis_cache_round_trip_with_ttl(redis_cache):
    key = cache_key("north", "naive", "v1", "2024-01-01T00:00:00+00:00", 3, (80,))
    assert redis_cache.get(key) is None
    value = {"points": [{"mean": 1.5}], "model": "naive"}
    redis_cache.set(key, value, ttl_s=1)
    assert redis_cache.get(key) == value
    assert 0 < redis_cache.client.ttl(redis_cache.prefix + key) <= 1
    time.sleep(1.2)
    assert redis_cache.get(key) is None
    assert redis_cache.errors == 0


def test_redis_down_is_a_miss_and_never_raises():
    seen = []
    cache = RedisForecastCache("redis://127.0.0.1:1/0", timeout_s=0.2, retry_s=60, on_error=seen.append)
    cache.set("k", {"v": 1}, ttl_s=10)
    assert cache.get("k") is None
    assert cache.errors == 1 and seen == ["set"]  # the get was skipped: Redis is known to be down
    assert cache.available is False
    cache.close()


def test_cache_recovers_by_itself_after_redis_comes_back(tmp_path):
    """A private Redis (own port and dir) is stopped and restarted under the cache."""
    port = "6391"
    env = {"REDIS_PORT": port, "REDIS_DIR": str(tmp_path / "redis"), "PATH": "/usr/bin:/bin"}
    script = str(support.ROOT / "scripts/redis.sh")
    subprocess.run(["bash", script, "up"], check=True, env=env, capture_output=True)
    cache = RedisForecastCache(f"redis://127.0.0.1:{port}/0", timeout_s=0.3, retry_s=0.2)
    try:
        cache.set("k", {"v": 1}, ttl_s=60)
        subprocess.run(["bash", script, "down"], check=True, env=env, capture_output=True)
        assert cache.get("k") is None and cache.errors == 1
        subprocess.run(["bash", script, "up"], check=True, env=env, capture_output=True)
        time.sleep(0.3)
        cache.set("k", {"v": 2}, ttl_s=60)
        assert cache.get("k") == {"v": 2} and cache.available
    finally:
        cache.close()
        subprocess.run(["bash", script, "down"], env=env, capture_output=True)


async def test_async_writer_is_read_by_sync_cache(redis_cache):
    writer = AsyncRedisForecastCache(support.REDIS_URL, prefix=redis_cache.prefix.removesuffix(":cache:"))
    try:
        await writer.set_many([(latest_forecast_key("a"), {"m": 1}, 60), ("x", {"m": 2}, 60)])
        assert redis_cache.get(latest_forecast_key("a")) == {"m": 1}
        assert await writer.get("x") == {"m": 2}
    finally:
        await writer.close()


def test_make_cache_follows_settings(redis_up):
    assert isinstance(make_cache(Settings()), InMemoryTTLCache)
    cache = make_cache(Settings(redis_url=redis_up, redis_key_prefix="p"))
    assert isinstance(cache, RedisForecastCache) and cache.prefix == "p:cache:"
    cache.close()
