"""The forecast cache: answers the same forecast twice without a model call.

A cache is an optimisation, never a dependency: when Redis is down the cache logs,
counts the failure, behaves as a miss (``get``) or a no-op (``set``) and tries Redis
again after ``settings.redis_retry_s`` — it never raises into a request.

Keys are logical strings (:func:`cache_key`, :func:`latest_forecast_key`); the Redis
cache stores each under ``{settings.redis_key_prefix}:cache:{key}`` as JSON, so

    redis-cli GET gridcast:cache:latest:region-1

shows the newest forecast the bridge published for ``region-1``.

Example:
    >>> cache = InMemoryTTLCache()
    >>> key = cache_key("north", "lstm", "abc", "2024-01-01T00:00:00+00:00", 24, (80, 95))
    >>> key
    'fc:north:lstm:abc:2024-01-01T00:00:00+00:00:24:80,95'
    >>> cache.set(key, {"points": []}, ttl_s=60)
    >>> cache.get(key)
    {'points': []}
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson
import pandas as pd

from gridcast.settings import Settings

logger = logging.getLogger(__name__)


class ForecastCache(Protocol):
    """Finished forecasts by key, as JSON bytes (what an API returns as is on a hit)."""

    def get_bytes(self, key: str) -> bytes | None: ...

    def set_bytes(self, key: str, value: bytes, ttl_s: int) -> None: ...

    def get(self, key: str) -> dict | None: ...


def cache_key(
    region: str, model: str, version: str, origin: str | pd.Timestamp, horizon: int, level: Sequence[int]
) -> str:
    """The key of one forecast: everything that changes the answer is in it.

    ``origin`` is the last observed timestamp the forecast starts after (ISO string or
    a Timestamp, normalised to UTC ISO); ``version`` the served model's tag, so a newly
    promoted model never answers from its predecessor's cache.
    """
    if isinstance(origin, pd.Timestamp):
        origin = (origin.tz_localize("UTC") if origin.tzinfo is None else origin.tz_convert("UTC")).isoformat()
    levels = ",".join(str(int(x)) for x in sorted(level))
    return f"fc:{region}:{model}:{version}:{origin}:{int(horizon)}:{levels}"


def latest_forecast_key(region: str) -> str:
    """Where the bridge keeps the newest forecast it published for ``region``."""
    return f"latest:{region}"


class InMemoryTTLCache:
    """A bounded, thread-safe LRU with per-entry expiry (embedded default, tests).

    Bounded by entries *and* by bytes: answers weigh from about a kilobyte (horizon 1)
    to over a hundred (horizon 168), so an entry count alone lets memory grow by
    hundreds of megabytes before the bound bites (seen in the memory soak).
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 2**20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, bytes, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.available = True

    def get_bytes(self, key: str) -> bytes | None:
        item = self._data.get(key)  # a dict read is atomic; only the LRU bookkeeping takes the lock
        if item is None:
            return None
        expires, value, size = item
        with self._lock:
            if expires <= self._clock():
                if self._data.get(key) is item:
                    del self._data[key]
                    self.bytes -= size
                return None
            if key in self._data:
                self._data.move_to_end(key)
        return value

    def set_bytes(self, key: str, value: bytes, ttl_s: int) -> None:
        if ttl_s <= 0:
            return
        size = len(value)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            self._data[key] = (self._clock() + ttl_s, value, size)
            self.bytes += size
            while len(self._data) > self.max_entries or self.bytes > self.max_bytes:
                _, (_, _, dropped) = self._data.popitem(last=False)
                self.bytes -= dropped

    def get(self, key: str) -> dict | None:
        raw = self.get_bytes(key)
        return None if raw is None else orjson.loads(raw)

    def set(self, key: str, value: dict, ttl_s: int) -> None:
        self.set_bytes(key, orjson.dumps(value, default=str), ttl_s)


class RedisForecastCache:
    """Redis-backed cache that degrades to a miss when Redis is away.

    After a failure it does not touch Redis for ``retry_s`` seconds (so a dead Redis
    costs one timeout, not one per request), then tries again; redis-py's pool
    reconnects by itself. ``errors`` counts the failures (tests, ``/metrics``).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gridcast",
        timeout_s: float = 1.0,
        retry_s: float = 2.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        import redis

        self._redis_errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.prefix = f"{prefix}:cache:"
        self.retry_s = retry_s
        self.errors = 0
        self._on_error = on_error
        self._down_until = 0.0
        #: whether Redis answered the last operation (the core flags answers "degraded")
        self.available = True

    def _should_try(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, op: str, exc: BaseException) -> None:
        self.errors += 1
        self.available = False
        self._down_until = time.monotonic() + self.retry_s
        logger.warning("forecast cache: Redis %s failed (%s); treating as a miss for %.1fs", op, type(exc).__name__, self.retry_s)
        if self._on_error is not None:
            self._on_error(op)

    def get_bytes(self, key: str) -> bytes | None:
        if not self._should_try():
            return None
        try:
            raw = self.client.get(self.prefix + key)
        except self._redis_errors as exc:
            self._failed("get", exc)
            return None
        self.available = True
        return raw

    def set_bytes(self, key: str, value: bytes, ttl_s: int) -> None:
        if ttl_s <= 0 or not self._should_try():
            return
        try:
            self.client.set(self.prefix + key, value, ex=int(ttl_s))
        except self._redis_errors as exc:
            self._failed("set", exc)
            return
        self.available = True

    def get(self, key: str) -> dict | None:
        raw = self.get_bytes(key)
        if raw is None:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:  # written by something else: a miss, not an error for the client
            logger.warning("forecast cache: undecodable value under %s ignored", key)
            return None

    def set(self, key: str, value: dict, ttl_s: int) -> None:
        self.set_bytes(key, orjson.dumps(value, default=str), ttl_s)

    def close(self) -> None:
        self.client.close()


class AsyncRedisForecastCache:
    """The bridge's asyncio writer for the same keys.

    Unlike the service's cache it raises on failure: for the bridge the cached forecast
    is an output it must deliver before committing the Kafka offset.
    """

    def __init__(self, url: str, *, prefix: str = "gridcast", timeout_s: float = 1.0) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.prefix = f"{prefix}:cache:"

    async def get(self, key: str) -> dict | None:
        raw = await self.client.get(self.prefix + key)
        return None if raw is None else json.loads(raw)

    async def set_many(self, items: Sequence[tuple[str, dict | bytes, int]]) -> None:
        """Write ``(key, value, ttl_s)`` items in one pipelined round trip.

        A value may come already encoded (JSON bytes): the bridge encodes each forecast
        once for its two cache keys and the topic.
        """
        if not items:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for key, value, ttl_s in items:
                data = value if isinstance(value, bytes) else json.dumps(value, default=str, separators=(",", ":"))
                pipe.set(self.prefix + key, data, ex=max(1, int(ttl_s)))
            await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()


def make_cache(settings: Settings, *, on_error: Callable[[str], None] | None = None) -> InMemoryTTLCache | RedisForecastCache:
    """Redis when ``settings.redis_url`` is set, else in-process."""
    if settings.redis_url:
        return RedisForecastCache(
            settings.redis_url,
            prefix=settings.redis_key_prefix,
            timeout_s=settings.redis_timeout_s,
            retry_s=settings.redis_retry_s,
            on_error=on_error,
        )
    return InMemoryTTLCache(max_bytes=settings.cache_max_mb * 2**20)

