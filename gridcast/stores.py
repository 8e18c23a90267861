"""The stores a process uses, chosen from its settings: Redis when ``redis_url`` is set, else in-process."""

from __future__ import annotations

from gridcast.settings import Settings
from gridcast.state import InMemoryStateStore
from gridcast.state_redis import AsyncRedisStateStore, RedisStateStore


def make_state_store(settings: Settings) -> InMemoryStateStore | RedisStateStore:
    """Redis when ``settings.redis_url`` is set, else in-process (the embedded default)."""
    if settings.redis_url:
        return RedisStateStore(
            settings.redis_url,
            prefix=settings.redis_key_prefix,
            max_points=settings.state_max_points,
            timeout_s=settings.redis_timeout_s,
            weather_refresh_s=settings.weather_refresh_s,
        )
    return InMemoryStateStore(max_points=settings.state_max_points)


def make_async_state_store(settings: Settings, url: str | None = None) -> AsyncRedisStateStore:
    """The bridge's store; the bridge always needs Redis (it is the hand-over to the service)."""
    url = url or settings.redis_url or "redis://127.0.0.1:6379/0"
    return AsyncRedisStateStore(
        url, prefix=settings.redis_key_prefix, max_points=settings.state_max_points, timeout_s=settings.redis_timeout_s
    )
