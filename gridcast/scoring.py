"""Live scoring: every forecast gridcast publishes or serves from state is kept, and scored as actuals arrive.

The ledger holds, per region, a bounded window of forecasts (:class:`ForecastRecord`:
model, version, origin, step, mean and intervals) and of *scored points*: one per
(forecast, target timestamp) whose actual has arrived. An actual arriving by any
path — the bridge's observations, ``POST /admin/observations`` — scores every held
forecast whose horizon covers its timestamp (:meth:`Ledger.score`). Both are keyed,
so scoring is idempotent: a replayed actual writes the same points again (a corrected
actual replaces the points it scored), and a forecast recorded twice for the same
(model, version, origin) is one forecast (the longer horizon is kept).

Live metrics (:func:`live_metrics`) are computed from the scored points: MAPE, MAE,
bias (mean forecast − actual) and interval coverage, per region, model and lead band,
over the last 24 h, 7 d and 30 d of DATA time (ending at the newest scored target:
a replay of last month scores last month, not the wall clock's last day).

Two backends behind one protocol: :class:`InMemoryLedger` (the embedded default) and
:class:`RedisLedger`. Redis layout (``P`` = ``settings.redis_key_prefix``):

* ``P:ledger:{region}`` hash, field ``{model}|{version}|{origin}`` → the forecast (JSON);
  ``P:ledger-idx:{region}`` sorted set of those fields by origin (range reads, trimming).
* ``P:scored:{region}`` hash, field ``{model}|{version}|{origin}|{target}`` → the point;
  ``P:scored-idx:{region}`` sorted set of those fields by target.
* ``P:ledger-regions`` set of regions with forecasts.

Redis is rebuildable, but not from Kafka alone: flushed, it loses the held forecasts
and their scores (the live metrics start again from empty). The forecasts topic holds
every published forecast and the observations topic every actual, so a replay of both
through :class:`Ledger` rebuilds them; forecasts the service served from state (not
published) are gone for good.

Example:
    >>> import numpy as np
    >>> ledger = InMemoryLedger(keep_s=30 * 86400)
    >>> rec = ForecastRecord("north", "naive", "v1", origin=0, step=3600, mean=np.array([100.0, 110.0]),
    ...                      lower={80: np.array([90.0, 90.0])}, upper={80: np.array([105.0, 99.0])})
    >>> ledger.record([rec])
    >>> ledger.score("north", [(3600, 100.0), (7200, 100.0)]), ledger.score("north", [(3600, 100.0)])
    (2, 1)
    >>> m = live_metrics(ledger.points("north"), bands=(1,))["naive"]["24h"]
    >>> m["n"], m["mape"], m["bias"], m["coverage"]["80"], sorted(m["bands"])
    (2, 5.0, 5.0, 0.5, ['1', '2+'])
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import orjson
import pandas as pd

#: live windows: name -> seconds of data time
WINDOWS: dict[str, int] = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}

#: the live-score gauges a process exports: ``gridcast_live_{key}{region,model,window}`` -> help
#: (``gridcast_live_coverage`` has a ``level`` label too); one summary of :func:`live_metrics` sets them
LIVE_GAUGES: dict[str, str] = {
    "mape": "Live MAPE (%) of served forecasts scored against arrived actuals, per data-time window.",
    "mae": "Live mean absolute error (MW) of served forecasts, per data-time window.",
    "bias": "Live bias (mean forecast minus actual, MW), per data-time window.",
    "n": "Scored forecast steps in the window.",
    "coverage": "Live share of actuals inside the forecast interval, per level.",
}


@dataclass(frozen=True, eq=False)
class ForecastRecord:
    """One forecast as the ledger keeps it (arrays; ``lower``/``upper`` by interval level)."""

    region: str
    model: str
    version: str
    origin: int  # epoch seconds of the last observation before the first step
    step: int
    mean: np.ndarray
    lower: Mapping[int, np.ndarray]
    upper: Mapping[int, np.ndarray]
    weather_issued_at: int | None = None

    @property
    def key(self) -> str:
        return f"{self.model}|{self.version}|{self.origin}"

    @property
    def end(self) -> int:
        """Epoch seconds of the last step."""
        return self.origin + len(self.mean) * self.step

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> ForecastRecord | None:
        """From a response document (service answer, published forecast); None for an error or empty one."""
        points = doc.get("points")
        if "error" in doc or not points:
            return None
        # the points are on a regular grid (the record keeps origin + step): two stamps tell it
        first = _epoch(points[0]["timestamp"])
        origin = _epoch(doc["origin"])
        step = _epoch(points[1]["timestamp"]) - first if len(points) > 1 else first - origin
        levels = [int(lv) for lv in doc.get("level", [])]
        lower = {lv: np.array([p["intervals"][str(lv)]["lower"] for p in points], dtype=float) for lv in levels}
        upper = {lv: np.array([p["intervals"][str(lv)]["upper"] for p in points], dtype=float) for lv in levels}
        issued = doc.get("weather_issued_at")
        return cls(str(doc["region"]), str(doc["model"]), str(doc["model_version"]), origin, step,
                   np.array([p["mean"] for p in points], dtype=float), lower, upper,
                   _epoch(issued) if issued else None)

    def to_json(self) -> bytes:
        # "n" first: the Redis script compares horizons without decoding the JSON
        return orjson.dumps({
            "n": len(self.mean), "region": self.region, "model": self.model, "version": self.version,
            "origin": self.origin, "step": self.step, "mean": self.mean.tolist(),
            "lower": {str(k): v.tolist() for k, v in self.lower.items()},
            "upper": {str(k): v.tolist() for k, v in self.upper.items()},
            "weather_issued_at": self.weather_issued_at,
        })

    @classmethod
    def from_json(cls, raw: bytes | str) -> ForecastRecord:
        d = orjson.loads(raw)
        return cls(d["region"], d["model"], d["version"], int(d["origin"]), int(d["step"]),
                   np.array(d["mean"], dtype=float), {int(k): np.array(v, dtype=float) for k, v in d["lower"].items()},
                   {int(k): np.array(v, dtype=float) for k, v in d["upper"].items()}, d.get("weather_issued_at"))


def _epoch(stamp: str) -> int:
    """Epoch seconds of an ISO 8601 timestamp (``…+00:00``, ``…Z``; no offset = UTC)."""
    try:
        parsed = datetime.fromisoformat(stamp)
        return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp())
    except ValueError:  # a form fromisoformat does not read
        return int(pd.Timestamp(stamp).timestamp())


@dataclass(frozen=True)
class ScoredPoint:
    """One forecast step whose actual arrived."""

    model: str
    version: str
    origin: int
    target: int
    lead: int  # steps after the origin (1 = the first step)
    actual: float
    mean: float
    covered: Mapping[str, bool]  # level ("80") -> actual inside the interval

    @property
    def key(self) -> str:
        return f"{self.model}|{self.version}|{self.origin}|{self.target}"

    def to_json(self) -> bytes:
        return orjson.dumps([self.model, self.version, self.origin, self.target, self.lead, self.actual, self.mean,
                             self.covered])

    @classmethod
    def from_json(cls, raw: bytes | str) -> ScoredPoint:
        m, v, o, t, lead, a, mean, cov = orjson.loads(raw)
        return cls(m, v, int(o), int(t), int(lead), float(a), float(mean), cov)


def score_points(records: Iterable[ForecastRecord], actuals: Sequence[tuple[int, float]]) -> list[ScoredPoint]:
    """The points ``actuals`` score against ``records`` (pure; the backends store them).

    Example:
        >>> rec = ForecastRecord("r", "naive", "v", 0, 60, np.array([1.0, 2.0]), {}, {})
        >>> [(p.lead, p.actual) for p in score_points([rec], [(120, 3.0), (180, 1.0), (0, 9.0)])]
        [(2, 3.0)]
    """
    acts = [(int(t), float(a)) for t, a in actuals if math.isfinite(a)]
    out = []
    for rec in records:
        n, origin, step = len(rec.mean), rec.origin, rec.step
        hits = []
        for target, actual in acts:
            lead, off = divmod(target - origin, step)
            if not off and 1 <= lead <= n:
                hits.append((target, actual, lead))
        if not hits:
            continue
        # plain floats once per record: numpy scalars cost more than the comparisons
        mean = rec.mean.tolist()
        bands = [(str(lv), rec.lower[lv].tolist(), rec.upper[lv].tolist()) for lv in rec.lower]
        for target, actual, lead in hits:
            i = lead - 1
            covered = {name: lo[i] <= actual <= hi[i] for name, lo, hi in bands}
            out.append(ScoredPoint(rec.model, rec.version, origin, target, lead, actual, mean[i], covered))
    return out


def band_names(bands: Sequence[int]) -> list[str]:
    """``(6, 24)`` → ``['1-6', '7-24', '25+']``."""
    names, lo = [], 1
    for hi in bands:
        names.append(f"{lo}-{hi}" if hi > lo else str(hi))
        lo = hi + 1
    return [*names, f"{lo}+"]


def _summary(points: Sequence[ScoredPoint]) -> dict:
    actual = np.array([p.actual for p in points])
    err = np.array([p.mean for p in points]) - actual
    nonzero = actual != 0
    levels = sorted({lv for p in points for lv in p.covered}, key=int)
    return {
        "n": len(points),
        "mape": round(float(np.mean(np.abs(err[nonzero]) / np.abs(actual[nonzero])) * 100), 6) if nonzero.any() else None,
        "mae": round(float(np.mean(np.abs(err))), 6),
        "bias": round(float(np.mean(err)), 6),
        "coverage": {lv: round(float(np.mean([p.covered[lv] for p in points if lv in p.covered])), 6)
                     for lv in levels},
    }


def live_metrics(
    points: Sequence[ScoredPoint], *, bands: Sequence[int] = (6, 24, 48), now: int | None = None
) -> dict[str, dict[str, dict]]:
    """model -> window -> ``{n, mape, mae, bias, coverage, bands: {band: same}}`` for one region.

    Windows end at ``now`` (default: the newest scored target) and reach back 24 h, 7 d
    and 30 d of data time; a window without points is left out.
    """
    if not points:
        return {}
    end = now if now is not None else max(p.target for p in points)
    names = band_names(bands)
    edges = np.asarray(bands)
    by_model: dict[str, list[ScoredPoint]] = defaultdict(list)
    for p in points:
        by_model[p.model].append(p)
    out: dict[str, dict[str, dict]] = {}
    for model, mine in sorted(by_model.items()):
        per_window = {}
        for window, span in WINDOWS.items():
            inside = [p for p in mine if end - span < p.target <= end]
            if not inside:
                continue
            summary = _summary(inside)
            grouped: dict[str, list[ScoredPoint]] = defaultdict(list)
            for p in inside:
                grouped[names[int(np.searchsorted(edges, p.lead))]].append(p)
            summary["bands"] = {b: _summary(grouped[b]) for b in names if grouped[b]}
            per_window[window] = summary
        out[model] = per_window
    return out


class Ledger(Protocol):
    """Where forecasts wait for their actuals (embedded or Redis)."""

    def record(self, records: Sequence[ForecastRecord]) -> None: ...

    def score(self, region: str, actuals: Sequence[tuple[int, float]]) -> int: ...

    def score_many(self, actuals: Mapping[str, Sequence[tuple[int, float]]]) -> dict[str, int]: ...

    def points(self, region: str) -> list[ScoredPoint]: ...

    def regions(self) -> list[str]: ...


class InMemoryLedger:
    """The embedded ledger: dicts under a lock, trimmed to ``keep_s`` of data time per region."""

    def __init__(self, *, keep_s: int = 30 * 86400) -> None:
        self.keep_s = keep_s
        self._records: dict[str, dict[str, ForecastRecord]] = defaultdict(dict)
        self._points: dict[str, dict[str, ScoredPoint]] = defaultdict(dict)
        self._lock = threading.Lock()

    def record(self, records: Sequence[ForecastRecord]) -> None:
        with self._lock:
            for rec in records:
                held = self._records[rec.region].get(rec.key)
                if held is None or len(rec.mean) >= len(held.mean):
                    self._records[rec.region][rec.key] = rec
            for region in {r.region for r in records}:
                self._trim(region)

    def score(self, region: str, actuals: Sequence[tuple[int, float]]) -> int:
        if not actuals:
            return 0
        with self._lock:
            scored = score_points(self._records.get(region, {}).values(), actuals)
            held = self._points[region]
            for p in scored:
                held[p.key] = p
            self._trim(region)
            return len(scored)

    def _trim(self, region: str) -> None:
        records, points = self._records.get(region, {}), self._points.get(region, {})
        newest = max([r.origin for r in records.values()] + [p.target for p in points.values()], default=None)
        if newest is None:
            return
        cut = newest - self.keep_s
        for k in [k for k, r in records.items() if r.end <= cut]:
            del records[k]
        for k in [k for k, p in points.items() if p.target <= cut]:
            del points[k]

    def score_many(self, actuals: Mapping[str, Sequence[tuple[int, float]]]) -> dict[str, int]:
        """:meth:`score` for several regions: points scored per region."""
        return {region: self.score(region, rows) for region, rows in actuals.items()}

    def points(self, region: str) -> list[ScoredPoint]:
        with self._lock:
            return list(self._points.get(region, {}).values())

    def regions(self) -> list[str]:
        with self._lock:
            return sorted(r for r, recs in self._records.items() if recs)


#: KEYS = [ledger hash, ledger index, regions, spans]; ARGV = [region, field, origin, n, json, span s];
#: the longer horizon wins; ``spans`` keeps each region's longest forecast span (what scoring must look back)
_RECORD_SCRIPT = """
local span = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
if tonumber(ARGV[6]) > span then redis.call('HSET', KEYS[4], ARGV[1], ARGV[6]) end
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if cur then
  local n = tonumber(string.match(cur, '^{"n":(%d+)'))
  if n and n > tonumber(ARGV[4]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[5])
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""


class RedisLedger:
    """The ledger in Redis (sync redis-py: the service calls it from threads, the bridge via ``to_thread``).

    Args:
        url: Redis URL.
        prefix: key prefix (``settings.redis_key_prefix``).
        keep_s: data time kept per region (forecasts by their last step, points by target).
        max_span_s: the longest horizon a forecast may have: how far back an actual looks for the
            forecasts it scores in a region whose longest recorded span is unknown (its forecasts
            were recorded before spans were kept); otherwise that recorded span is used.
    """

    def __init__(self, url: str, *, prefix: str = "gridcast", keep_s: int = 30 * 86400, max_span_s: int = 168 * 3600,
                 timeout_s: float = 1.0) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self.prefix = prefix
        self.keep_s = keep_s
        self.max_span_s = max_span_s
        self._record = self.client.register_script(_RECORD_SCRIPT)
        # records parsed by their stored bytes: every actual re-reads the forecasts that reach
        # it, and a record's bytes never change meaning (a pure memo, never a second truth)
        self._parsed: dict[bytes, ForecastRecord] = {}

    #: records kept parsed (about 4 kB each): a day's hourly forecasts of a few hundred regions
    PARSED_MAX = 8192

    def _parse(self, raw: bytes) -> ForecastRecord:
        rec = self._parsed.get(raw)
        if rec is None:
            rec = ForecastRecord.from_json(raw)
            if len(self._parsed) >= self.PARSED_MAX:
                del self._parsed[next(iter(self._parsed))]  # the oldest parsed
            self._parsed[raw] = rec
        return rec

    def _k(self, kind: str, region: str) -> str:
        return f"{self.prefix}:{kind}:{region}"

    def record(self, records: Sequence[ForecastRecord]) -> None:
        if not records:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for rec in records:
                self._record(keys=[self._k("ledger", rec.region), self._k("ledger-idx", rec.region),
                                   f"{self.prefix}:ledger-regions", f"{self.prefix}:ledger-span"],
                             args=[rec.region, rec.key, rec.origin, len(rec.mean), rec.to_json(),
                                   rec.end - rec.origin], client=pipe)
            regions = sorted({r.region for r in records})
            for region in regions:
                # forecasts whose last step is older than the window: by origin, with the longest span as margin
                newest = max(r.origin for r in records if r.region == region)
                pipe.zrangebyscore(self._k("ledger-idx", region), "-inf", f"({newest - self.keep_s - self.max_span_s}")
            olds = pipe.execute()[len(records):]
        self._trim_records(dict(zip(regions, olds, strict=True)))

    def _trim_records(self, olds: Mapping[str, Sequence[bytes]]) -> None:
        """Drop each region's records that left the window (one pipelined round trip for all)."""
        olds = {region: old for region, old in olds.items() if old}
        if not olds:
            return
        with self.client.pipeline(transaction=False) as pipe:
            for region, old in olds.items():
                pipe.hdel(self._k("ledger", region), *old)
                pipe.zrem(self._k("ledger-idx", region), *old)
            pipe.execute()

    def score(self, region: str, actuals: Sequence[tuple[int, float]]) -> int:
        return self.score_many({region: actuals}).get(region, 0)

    def score_many(self, actuals: Mapping[str, Sequence[tuple[int, float]]]) -> dict[str, int]:
        """Score several regions' actuals in five round trips in all (not five per region).

        Each actual looks back for the forecasts that can reach it by its region's longest
        recorded span (a ledger written before spans were kept: ``max_span_s``).
        """
        todo = {r: rows for r, rows in actuals.items() if rows}
        if not todo:
            return {}
        regions = list(todo)
        spans = self.client.hmget(f"{self.prefix}:ledger-span", regions)
        with self.client.pipeline(transaction=False) as pipe:
            for region, span in zip(regions, spans, strict=True):
                rows = todo[region]
                lo = min(t for t, _ in rows) - (int(span) if span is not None else self.max_span_s)
                pipe.zrangebyscore(self._k("ledger-idx", region), lo, f"({max(t for t, _ in rows)}")
            fields = dict(zip(regions, pipe.execute(), strict=True))
        regions = [r for r in regions if fields[r]]
        if not regions:
            return {}
        with self.client.pipeline(transaction=False) as pipe:
            for region in regions:
                pipe.hmget(self._k("ledger", region), fields[region])
            docs = dict(zip(regions, pipe.execute(), strict=True))
        scored = {}
        for region in regions:
            records = [self._parse(d) for d in docs[region] if d is not None]
            points = score_points(records, todo[region])
            if points:
                scored[region] = points
        if not scored:
            return {}
        with self.client.pipeline(transaction=False) as pipe:
            for region, points in scored.items():
                newest = max(p.target for p in points)
                pipe.zrangebyscore(self._k("scored-idx", region), "-inf", newest - self.keep_s)
            olds = dict(zip(scored, pipe.execute(), strict=True))
        with self.client.pipeline(transaction=False) as pipe:
            for region, points in scored.items():
                h, idx = self._k("scored", region), self._k("scored-idx", region)
                pipe.hset(h, mapping={p.key: p.to_json() for p in points})
                pipe.zadd(idx, {p.key: p.target for p in points})
                if olds[region]:
                    pipe.hdel(h, *olds[region])
                    pipe.zrem(idx, *olds[region])
            pipe.execute()
        return {region: len(points) for region, points in scored.items()}

    def points(self, region: str) -> list[ScoredPoint]:
        return [ScoredPoint.from_json(v) for v in self.client.hvals(self._k("scored", region))]

    def regions(self) -> list[str]:
        return sorted(r.decode() if isinstance(r, bytes) else r
                      for r in self.client.smembers(f"{self.prefix}:ledger-regions"))

    def close(self) -> None:
        self.client.close()


def make_ledger(settings: Any) -> InMemoryLedger | RedisLedger:
    """Redis when ``settings.redis_url`` is set, else in-process (the embedded default)."""
    keep_s = settings.score_keep_days * 86400
    if settings.redis_url:
        return RedisLedger(settings.redis_url, prefix=settings.redis_key_prefix, keep_s=keep_s,
                           max_span_s=settings.max_horizon * settings.stream_step_s, timeout_s=settings.redis_timeout_s)
    return InMemoryLedger(keep_s=keep_s)


def record_of(plan: Any, answer: Any) -> ForecastRecord:
    """The ledger's record of a computed forecast (:class:`gridcast.forecast.Plan` and ``Answer``), from its arrays."""
    fc = answer.forecast
    origin = plan.origin if plan.origin is not None else fc.start - fc.step
    vintage = plan.vintage.issued_at if plan.vintage is not None else None
    return ForecastRecord(plan.query.region, answer.alias, answer.version, int(origin), int(fc.step),
                          fc.mean, dict(fc.lower), dict(fc.upper), vintage)
