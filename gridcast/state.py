"""The state store: the recent observations of every region, shared by service and bridge.

The bridge writes observations as they arrive from Kafka; the service reads a region's
recent history to forecast from it. Writes are idempotent by ``(region, timestamp)``:
Kafka delivers at least once, so a replayed or duplicated message must change nothing
(a corrected value for the same timestamp overwrites; it is not counted as new).

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

Each region keeps at most ``settings.state_max_points`` rows: the script trims the
oldest, and ignores a replayed row older than everything kept (it was trimmed on
purpose, so it must not count as new).

Example:
    >>> import pandas as pd
    >>> store = InMemoryStateStore(max_points=48)
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC", name="timestamp")
    >>> frame = pd.DataFrame({"load_mw": [1.0, 2.0, 3.0], "temperature_c": 20.0}, index=idx)
    >>> store.add_observations("north", frame), store.add_observations("north", frame)
    (3, 0)
    >>> store.history("north", n=2)["load_mw"].tolist()
    [2.0, 3.0]
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd

from gridcast.errors import GridcastError
from gridcast.schema import ALL_COLUMNS, LOAD, REGION, TEMPERATURE, TIMESTAMP
from gridcast.settings import Settings
from gridcast.weather import Vintage
from gridcast.weather import from_json as weather_from_json
from gridcast.weather import to_json as weather_json

logger = logging.getLogger(__name__)

#: value columns a row may carry (everything canonical except the keys)
VALUE_COLUMNS: tuple[str, ...] = tuple(c for c in ALL_COLUMNS if c not in (TIMESTAMP, REGION))

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


class StateStoreUnavailable(GridcastError):
    """The state store (Redis) cannot be reached; callers retry or answer 503."""

    code = "state_unavailable"


class StateStore(Protocol):
    """What the service and the bridge need from a state store."""

    def add_observations(self, region: str, frame: pd.DataFrame) -> int: ...

    def history(self, region: str, n: int | None = None) -> pd.DataFrame: ...

    def regions(self) -> list[str]: ...

    def last_timestamp(self, region: str) -> pd.Timestamp | None: ...


# ---- serialisation (one format for every store) ---------------------------------------


def encode_rows(frame: pd.DataFrame) -> list[tuple[int, str]]:
    """``[(epoch_seconds, json)]`` for each row of a region frame.

    ``frame`` has a UTC ``DatetimeIndex`` or a ``timestamp`` column; value columns not
    in the canonical schema are ignored, missing values are left out of the JSON.
    """
    if TIMESTAMP in frame.columns:
        frame = frame.set_index(TIMESTAMP)
    index = pd.DatetimeIndex(frame.index)
    if index.tz is None:
        raise ValueError("observation timestamps must be timezone-aware (UTC)")
    epochs = (index.tz_convert("UTC").as_unit("s").asi8).tolist()
    cols = [c for c in VALUE_COLUMNS if c in frame.columns]
    values = frame[cols].to_numpy(dtype=float, na_value=np.nan) if cols else np.empty((len(frame), 0))
    out = []
    for epoch, row in zip(epochs, values, strict=True):
        doc = {c: float(v) for c, v in zip(cols, row, strict=True) if math.isfinite(v)}
        out.append((int(epoch), json.dumps(doc, separators=(",", ":"))))
    return out


def decode_rows(epochs: Iterable[int], docs: Iterable[str | bytes | None]) -> pd.DataFrame:
    """The inverse of :func:`encode_rows`: a frame on a UTC index named ``timestamp``.

    Built column by column (not row by row): the bridge decodes thousands of rows per batch.
    """
    ts: list[int] = []
    kept: list[str] = []
    for epoch, doc in zip(epochs, docs, strict=True):
        if doc is None:  # trimmed between the index read and the hash read
            continue
        ts.append(int(epoch))
        kept.append(doc.decode() if isinstance(doc, bytes) else doc)
    # one parse of a JSON array is ~10x faster than one json.loads per row
    return frame_from_rows(ts, json.loads("[" + ",".join(kept) + "]"))


def frame_from_rows(ts: Sequence[int], rows: Sequence[dict]) -> pd.DataFrame:
    """A region frame from epoch seconds and parsed row documents (same order)."""
    present = set().union(*rows) if rows else set()
    columns = [c for c in VALUE_COLUMNS if c in present or c in (LOAD, TEMPERATURE)]
    data = {c: np.array([r.get(c, np.nan) for r in rows], dtype=float) for c in columns}
    index = pd.DatetimeIndex(np.array(ts, dtype="int64") * 1_000_000_000, tz="UTC", name=TIMESTAMP)
    return pd.DataFrame(data, index=index)


def _limit(n: int | None, max_points: int) -> int:
    return max_points if n is None else max(0, min(int(n), max_points))


# ---- in-process (embedded default, tests) -----------------------------------------------


class InMemoryStateStore:
    """A thread-safe dict-backed store with the same semantics as :class:`RedisStateStore`."""

    def __init__(self, *, max_points: int = 24 * 7 * 10) -> None:
        self.max_points = max_points
        self._rows: dict[str, dict[int, str]] = {}
        self._weather: dict[str, Vintage] = {}
        self._lock = threading.Lock()

    def set_weather(self, vintage: Vintage) -> bool:
        """Keep ``vintage`` as the region's latest unless a later-issued one is held; True if kept."""
        with self._lock:
            held = self._weather.get(vintage.region)
            if held is not None and held.issued_at >= vintage.issued_at:
                return False
            self._weather[vintage.region] = vintage
            return True

    def latest_weather(self, region: str) -> Vintage | None:
        """The latest weather-forecast vintage of ``region`` (None: none received)."""
        with self._lock:
            return self._weather.get(region)

    def add_observations(self, region: str, frame: pd.DataFrame) -> int:
        return self.add_rows(region, encode_rows(frame))[0]

    def add_rows(self, region: str, rows: list[tuple[int, str]]) -> tuple[int, int | None]:
        """Add encoded rows; ``(new_rows, last_epoch)`` as the Redis script returns them."""
        with self._lock:
            stored = self._rows.setdefault(region, {})
            oldest = min(stored) if len(stored) >= self.max_points else None
            new = 0
            for epoch, doc in rows:
                if oldest is not None and epoch < oldest:
                    continue
                new += epoch not in stored
                stored[epoch] = doc
            for epoch in sorted(stored)[: max(0, len(stored) - self.max_points)]:
                del stored[epoch]
            return new, (max(stored) if stored else None)

    def history(self, region: str, n: int | None = None) -> pd.DataFrame:
        with self._lock:
            stored = self._rows.get(region, {})
            k = _limit(n, self.max_points)
            epochs = sorted(stored)[-k:] if k else []
            docs = [stored[e] for e in epochs]
        return decode_rows(epochs, docs)

    def regions(self) -> list[str]:
        with self._lock:
            return sorted(r for r, rows in self._rows.items() if rows)

    def last_timestamp(self, region: str) -> pd.Timestamp | None:
        with self._lock:
            stored = self._rows.get(region)
            return pd.Timestamp(max(stored), unit="s", tz="UTC") if stored else None

    def count(self, region: str) -> int:
        """Rows held for ``region`` (tests, benchmarks)."""
        with self._lock:
            return len(self._rows.get(region, {}))


# ---- Redis (the deployment) ----------------------------------------------------------------


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
