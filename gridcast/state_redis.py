"""The Redis state stores: the service's (sync) and the bridge's (asyncio), one key layout.

Redis key layout (``P`` = ``settings.redis_key_prefix``), shared by the sync store (the
service) and the async one (the bridge) through the same Lua script and serialisation:

* ``P:obs:{region}``  hash, field = epoch seconds, value = compact JSON of the row
  (canonical columns except ``region``/``timestamp``; missing values left out).
* ``P:idx:{region}``  sorted set, member = epoch seconds, score = epoch seconds (order).
* ``P:regions``       set of region names.
* ``P:applied:{topic}`` hash, field = partition, value = the next Kafka offset whose
  observations are in this Redis (written by the bridge in the same pipeline as the
  rows, never moved back). Redis is only a cache of the observations topic: a marker
  missing or behind the consumer group's position means Redis lost rows, and the
  bridge restores them from Kafka (``streaming/bridge.py``).
* ``P:weather:{region}`` hash ``{issued, doc}``: the latest weather-forecast vintage
  (:mod:`gridcast.weather`; ``doc`` = :func:`gridcast.weather.to_json`). A vintage
  replaces it only when issued later (a late, older one is ignored).

Every write goes through one Lua script per concern (rows, applied markers, weather
vintages), so two bridges writing the same region during a rebalance cannot double
count or leave the hash and the index out of step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from gridcast.state import StateStoreUnavailable, _limit, decode_rows, encode_rows
from gridcast.weather import Vintage
from gridcast.weather import from_json as weather_from_json
from gridcast.weather import to_json as weather_json

logger = logging.getLogger(__name__)

#: KEYS = [hash, index, regions]; ARGV = [region, max_points, epoch1, json1, epoch2, json2, ...]
#: returns {new_rows, last_epoch or -1, rows held}. Atomic, so two bridges writing the same region
#: (during a rebalance) cannot double count or leave the hash and index out of step.
_ADD_SCRIPT = """
local h, z, regions = KEYS[1], KEYS[2], KEYS[3]
local maxp = tonumber(ARGV[2])
local new = 0
local full = redis.call('ZCARD', z) >= maxp
local oldest = nil
if full then
  local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  if first[2] then oldest = tonumber(first[2]) end
end
for i = 3, #ARGV, 2 do
  local ts = tonumber(ARGV[i])
  if not (oldest and ts < oldest) then
    new = new + redis.call('HSET', h, ARGV[i], ARGV[i + 1])
    redis.call('ZADD', z, ts, ARGV[i])
  end
end
local n = redis.call('ZCARD', z)
if n > maxp then
  local old = redis.call('ZRANGE', z, 0, n - maxp - 1)
  redis.call('ZREMRANGEBYRANK', z, 0, n - maxp - 1)
  redis.call('HDEL', h, unpack(old))
end
redis.call('SADD', regions, ARGV[1])
local last = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
local held = redis.call('ZCARD', z)
if last[2] then return {new, tonumber(last[2]), held} end
return {new, -1, held}
"""

#: KEYS = [hash, index]; ARGV = [n]; returns {rows held, members, docs} of the newest n rows,
#: read atomically so the count and the rows belong together (the bridge's window check).
_TAIL_SCRIPT = """
local held = redis.call('ZCARD', KEYS[2])
local m = redis.call('ZRANGE', KEYS[2], -tonumber(ARGV[1]), -1)
local d = {}
if #m > 0 then d = redis.call('HMGET', KEYS[1], unpack(m)) end
return {held, m, d}
"""


#: KEYS = [applied hash]; ARGV = [partition1, offset1, ...]; raises each marker to its offset
#: (never lowers it: two bridges around a rebalance may finish out of order).
_MARK_SCRIPT = """
for i = 1, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if (not cur) or tonumber(cur) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""


#: KEYS = [weather hash]; ARGV = [issued epoch, doc]; newer wins, returns 1 when stored
_WEATHER_SCRIPT = """
local cur = redis.call('HGET', KEYS[1], 'issued')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'issued', ARGV[1], 'doc', ARGV[2])
return 1
"""


class RedisKeys:
    """The key layout, one place for the sync and async stores (and ``redis-cli`` users)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def obs(self, region: str) -> str:
        return f"{self.prefix}:obs:{region}"

    def index(self, region: str) -> str:
        return f"{self.prefix}:idx:{region}"

    @property
    def regions(self) -> str:
        return f"{self.prefix}:regions"

    def applied(self, topic: str) -> str:
        return f"{self.prefix}:applied:{topic}"

    def weather(self, region: str) -> str:
        return f"{self.prefix}:weather:{region}"


def _decode_str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisStateStore:
    """Synchronous Redis store (redis-py) for the service.

    Raises:
        StateStoreUnavailable: from every method when Redis cannot be reached; redis-py
            reconnects by itself on the next call once Redis is back.
    """

    def __init__(
        self, url: str, *, prefix: str = "gridcast", max_points: int = 24 * 7 * 10, timeout_s: float = 1.0,
        weather_refresh_s: float = 2.0, clock: Any = time.monotonic,
    ) -> None:
        import redis

        self._redis_errors = (redis.RedisError, OSError)
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
        )
        self.keys = RedisKeys(prefix)
        self.max_points = max_points
        self._add = self.client.register_script(_ADD_SCRIPT)
        self._set_weather = self.client.register_script(_WEATHER_SCRIPT)
        # region -> (read at, vintage): the forecast path asks per request; Redis is read
        # at most once per weather_refresh_s per region (a vintage changes a few times a day)
        self._weather_memo: dict[str, tuple[float, Vintage | None]] = {}
        self.weather_refresh_s = weather_refresh_s
        self._clock = clock

    def set_weather(self, vintage: Vintage) -> bool:
        """Keep ``vintage`` as the region's latest unless a later-issued one is held; True if kept."""
        stored = self._call("set_weather", lambda: self._set_weather(
            keys=[self.keys.weather(vintage.region)], args=[vintage.issued_at, weather_json(vintage)]))
        self._weather_memo.pop(vintage.region, None)
        return bool(stored)

    def latest_weather(self, region: str) -> Vintage | None:
        """The region's latest vintage, re-read from Redis at most every ``weather_refresh_s``."""
        now = self._clock()
        memo = self._weather_memo.get(region)
        if memo is not None and now - memo[0] < self.weather_refresh_s:
            return memo[1]
        raw = self._call("latest_weather", lambda: self.client.hget(self.keys.weather(region), "doc"))
        vintage = None if raw is None else weather_from_json(raw)
        self._weather_memo[region] = (now, vintage)
        return vintage

    def _call(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except self._redis_errors as exc:
            raise StateStoreUnavailable(f"state store unavailable during {what}: {type(exc).__name__}") from exc

    def add_observations(self, region: str, frame: pd.DataFrame) -> int:
        return self.add_rows(region, encode_rows(frame))[0]

    def add_rows(self, region: str, rows: list[tuple[int, str]]) -> tuple[int, int | None]:
        """Add encoded rows atomically; ``(new_rows, last_epoch)``."""
        if not rows:
            return 0, None
        new, last, _ = self._call("add_observations", lambda: self._add(
            keys=[self.keys.obs(region), self.keys.index(region), self.keys.regions],
            args=_script_args(region, self.max_points, rows),
        ))
        return int(new), (None if int(last) < 0 else int(last))

    def history(self, region: str, n: int | None = None) -> pd.DataFrame:
        k = _limit(n, self.max_points)
        if k == 0:
            return decode_rows([], [])

        def read() -> tuple[list, list]:
            members = self.client.zrange(self.keys.index(region), -k, -1)
            docs = self.client.hmget(self.keys.obs(region), members) if members else []
            return members, docs

        members, docs = self._call("history", read)
        return decode_rows((int(m) for m in members), docs)

    def regions(self) -> list[str]:
        return sorted(_decode_str(r) for r in self._call("regions", lambda: self.client.smembers(self.keys.regions)))

    def last_timestamp(self, region: str) -> pd.Timestamp | None:
        last = self._call("last_timestamp", lambda: self.client.zrange(self.keys.index(region), -1, -1))
        return pd.Timestamp(int(last[0]), unit="s", tz="UTC") if last else None

    def count(self, region: str) -> int:
        """Rows held for ``region`` (tests, benchmarks)."""
        return int(self._call("count", lambda: self.client.zcard(self.keys.index(region))))

    def close(self) -> None:
        self.client.close()


class AsyncRedisStateStore:
    """The bridge's asyncio twin of :class:`RedisStateStore` (same keys, same script).

    It lets :class:`redis.exceptions.RedisError` / ``OSError`` propagate: the bridge
    owns the retry-with-backoff loop and must not commit offsets after a failed write.
    """

    def __init__(
        self, url: str, *, prefix: str = "gridcast", max_points: int = 24 * 7 * 10, timeout_s: float = 1.0
    ) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.keys = RedisKeys(prefix)
        self.max_points = max_points
        self._add = self.client.register_script(_ADD_SCRIPT)
        self._tail = self.client.register_script(_TAIL_SCRIPT)
        self._mark = self.client.register_script(_MARK_SCRIPT)
        self._set_weather = self.client.register_script(_WEATHER_SCRIPT)

    async def set_weathers(self, vintages: Sequence[Vintage]) -> list[bool]:
        """Keep each vintage unless a later-issued one is held (newer wins), in one round trip."""
        if not vintages:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for v in vintages:
                await self._set_weather(keys=[self.keys.weather(v.region)], args=[v.issued_at, weather_json(v)],
                                        client=pipe)
            results = await pipe.execute()
        return [bool(r) for r in results]

    async def latest_weathers(self, regions: Iterable[str]) -> dict[str, Vintage]:
        """The latest vintage of each region that has one, in one round trip."""
        regions = list(regions)
        if not regions:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for r in regions:
                pipe.hget(self.keys.weather(r), "doc")
            docs = await pipe.execute()
        return {r: weather_from_json(d) for r, d in zip(regions, docs, strict=True) if d is not None}

    async def add_many(self, rows_by_region: Mapping[str, list[tuple[int, str]]]) -> dict[str, tuple[int, int | None, int]]:
        """Add the rows of many regions in ONE pipelined round trip.

        Returns:
            region -> ``(new_rows, last_epoch, rows_held)``; the bridge forecasts the
            regions whose last timestamp moved on, and checks its in-memory window
            against ``rows_held``.
        """
        regions = [r for r, rows in rows_by_region.items() if rows]
        if not regions:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for region in regions:
                await self._add(
                    keys=[self.keys.obs(region), self.keys.index(region), self.keys.regions],
                    args=_script_args(region, self.max_points, rows_by_region[region]),
                    client=pipe,
                )
            results = await pipe.execute()
        return {
            r: (int(new), None if int(last) < 0 else int(last), int(held))
            for r, (new, last, held) in zip(regions, results, strict=True)
        }

    async def add_many_applied(
        self, rows_by_region: Mapping[str, list[tuple[int, str]]], topic: str, applied: Mapping[int, int]
    ) -> tuple[dict[str, tuple[int, int | None, int]], dict[int, int | None]]:
        """:meth:`add_many` plus the per-partition "applied up to" markers, in ONE round trip.

        The pipeline reads the markers of ``applied``'s partitions, writes the rows, then
        raises each marker to its offset (the next offset after the batch). Redis runs
        the commands in order, so a marker is never ahead of the rows it stands for.

        Returns:
            ``(written, before)``: what :meth:`add_many` returns, and each partition's
            marker before this write (None = missing: a new partition, or Redis lost it).
        """
        regions = [r for r, rows in rows_by_region.items() if rows]
        parts = sorted(applied)
        if not regions and not parts:
            return {}, {}
        key = self.keys.applied(topic)
        async with self.client.pipeline(transaction=False) as pipe:
            if parts:
                pipe.hmget(key, [str(p) for p in parts])
            for region in regions:
                await self._add(
                    keys=[self.keys.obs(region), self.keys.index(region), self.keys.regions],
                    args=_script_args(region, self.max_points, rows_by_region[region]),
                    client=pipe,
                )
            if parts:
                args: list[Any] = []
                for p in parts:
                    args += [p, int(applied[p])]
                await self._mark(keys=[key], args=args, client=pipe)
            results = await pipe.execute()
        before: dict[int, int | None] = {}
        if parts:
            before = {p: None if v is None else int(v) for p, v in zip(parts, results[0], strict=True)}
            results = results[1:-1]
        written = {
            r: (int(new), None if int(last) < 0 else int(last), int(held))
            for r, (new, last, held) in zip(regions, results, strict=True)
        }
        return written, before

    async def applied(self, topic: str, partitions: Iterable[int]) -> dict[int, int | None]:
        """The "applied up to" marker of each partition (None = missing)."""
        parts = list(partitions)
        if not parts:
            return {}
        values = await self.client.hmget(self.keys.applied(topic), [str(p) for p in parts])
        return {p: None if v is None else int(v) for p, v in zip(parts, values, strict=True)}

    async def mark_applied(self, topic: str, applied: Mapping[int, int]) -> None:
        """Raise the markers of ``applied``'s partitions to their offsets (never lowers one)."""
        if applied:
            args: list[Any] = []
            for p, off in sorted(applied.items()):
                args += [p, int(off)]
            await self._mark(keys=[self.keys.applied(topic)], args=args)

    async def tails(self, regions: Iterable[str], n: int) -> dict[str, tuple[list[int], list[str | None], int]]:
        """The newest ``n`` rows of many regions, each read atomically with its row count.

        Returns:
            region -> ``(epochs, json docs, rows held)``, one pipelined round trip.
        """
        regions = list(regions)
        if not regions:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for r in regions:
                await self._tail(keys=[self.keys.obs(r), self.keys.index(r)], args=[max(1, n)], client=pipe)
            results = await pipe.execute()
        return {
            r: ([int(m) for m in members], [None if d is None else _decode_str(d) for d in docs], int(held))
            for r, (held, members, docs) in zip(regions, results, strict=True)
        }

    async def history(self, region: str, n: int | None = None) -> pd.DataFrame:
        return (await self.histories([region], n))[region]

    async def histories(self, regions: Iterable[str], n: int | None = None) -> dict[str, pd.DataFrame]:
        """Many regions' histories in one pipelined round trip."""
        regions = list(regions)
        k = _limit(n, self.max_points)
        if k == 0:
            return {r: decode_rows([], []) for r in regions}
        return {r: decode_rows(epochs, docs) for r, (epochs, docs, _) in (await self.tails(regions, k)).items()}

    async def last_timestamp(self, region: str) -> pd.Timestamp | None:
        last = await self.client.zrange(self.keys.index(region), -1, -1)
        return pd.Timestamp(int(last[0]), unit="s", tz="UTC") if last else None

    async def regions(self) -> list[str]:
        return sorted(_decode_str(r) for r in await self.client.smembers(self.keys.regions))

    async def count(self, region: str) -> int:
        return int(await self.client.zcard(self.keys.index(region)))

    async def close(self) -> None:
        await self.client.aclose()


def _script_args(region: str, max_points: int, rows: list[tuple[int, str]]) -> list[Any]:
    args: list[Any] = [region, max_points]
    for epoch, doc in rows:
        args += [epoch, doc]
    return args
