"""The forecast path shared by the service and the bridge: plan → batched model call → response.

One fixed order for every query (OpenSTEF's ``create_forecast`` split, adapted):

    plan:     validate against the served model → history (request, state or the
              model's own context) → cache key → cache lookup
    run:      one ``predict_series`` call per (region, alias) for all the plans of a
              batch → plausibility guard → fallback chain
    respond:  arrays → the response document (dict; bytes with orjson) → cache

Nothing here knows HTTP, BentoML, Redis or Kafka: the state store, the cache and the
models arrive as arguments, and queries arrive already parsed (:class:`Query`, built
by the edge that validated the wire format once: :mod:`gridcast.wire`). Inside, only
frozen dataclasses and numpy arrays travel (:class:`~gridcast.series.Series`,
:class:`~gridcast.models.base.Forecast`).

Fallback chain, when a model cannot answer a request (too little history, a failure)
or answers something implausible (non-finite, far outside the region's own range):
the served seasonal naive on the same history, then a daily/weekly profile of the
request's own history (:func:`~gridcast.models.base.profile_fallback`). Nothing is
fitted in the request path. An answer from the chain says so (``fallback``,
``fallback_reason``) and is not cached.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import orjson
import pandas as pd

from gridcast.cache import cache_key
from gridcast.catalog import ModelCatalog, ServedModel
from gridcast.errors import GridcastError, InsufficientDataError, UserInputError
from gridcast.guard import implausible
from gridcast.json_text import json_numbers, points_json
from gridcast.models.base import Forecast, Forecaster, SeriesRequest, check_level, profile_fallback
from gridcast.schema import LOAD, WEATHER
from gridcast.series import Points, Series, iso, iso_stamps, on_grid, points_from_rows  # noqa: F401 (re-exported)
from gridcast.settings import Settings
from gridcast.weather import Vintage, covariates

logger = logging.getLogger(__name__)

#: a plan's history that the state holds but was not read yet (only read after a cache miss)
_UNREAD = Series(0, 1, {})

#: every stored response starts with these bytes, so a cache hit only swaps the flags
STORED_PREFIX = b'{"cached":false,"degraded":[],'


# ---- what the core needs from its collaborators ---------------------------------------


class StateReader(Protocol):
    """Recent observations of a region: a frame (the state stores), or a series already on
    the model's grid (the bridge's in-memory windows), or None."""

    def history(self, region: str, n: int | None = None) -> pd.DataFrame | Series | None: ...


class ResponseCache(Protocol):
    """Finished response bytes by key (Redis or in-process)."""

    def get_bytes(self, key: str) -> bytes | None: ...

    def set_bytes(self, key: str, value: bytes, ttl_s: int) -> None: ...


class Metrics(Protocol):
    def count(self, event: str, **labels: str) -> None: ...


class _NoMetrics:
    def count(self, event: str, **labels: str) -> None:
        return None


# ---- queries and plans ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Query:
    """One forecast request, parsed at the edge (HTTP, a Kafka message or the bridge itself)."""

    region: str
    horizon: int
    model: str = "best"
    level: tuple[int, ...] = (80, 95)
    history: Series | Points | None = None
    weather: Series | Points | None = None


@dataclass(eq=False)
class Plan:
    """One query on its way through the core."""

    query: Query
    served: ServedModel
    level: tuple[int, ...]
    history: Series | None
    weather: Series | None
    source: str
    origin: int | None
    key: str | None = None
    cached: bytes | None = None
    degraded: list[str] = field(default_factory=list)
    vintage: Vintage | None = None  # the state's weather vintage ``weather`` was cut from

    def request(self) -> SeriesRequest:
        return SeriesRequest(self.query.horizon, self.level, self.history, self.weather)


@dataclass(frozen=True, eq=False)
class Answer:
    """What the models computed for one plan (after the guard and the fallback chain)."""

    forecast: Forecast
    alias: str
    version: str
    fallback_reason: str | None = None


# ---- the models, in this process -----------------------------------------------------------


def plausible(forecast: Forecast, served: ServedModel | None) -> bool:
    """Finite, and inside the region's plausible band when training recorded one (:mod:`gridcast.guard`)."""
    band = served.band if served is not None else None
    return not bool(implausible(forecast.mean, band)[0])


class ModelRunner:
    """The loaded forecasters; answers a batch of plans with one call per (region, alias)."""

    def __init__(self, catalog: ModelCatalog, forecasters: Mapping[tuple[str, str], Forecaster],
                 metrics: Metrics | None = None) -> None:
        self.catalog = catalog
        self.forecasters = dict(forecasters)
        self.metrics = metrics or _NoMetrics()

    def warm_up(self) -> None:
        """One forecast per model before the first request (lazy imports, first-call caches)."""
        for (region, alias), model in self.forecasters.items():
            result = model.predict_series([SeriesRequest(24)])[0]
            if isinstance(result, GridcastError):
                logger.info("warm-up of %s/%s: %s", region, alias, result.detail)

    def run(self, plans: Sequence[Plan]) -> list[Answer | GridcastError]:
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, plan in enumerate(plans):
            groups[(plan.served.region, plan.served.alias)].append(i)
        out: list[Answer | GridcastError | None] = [None] * len(plans)
        for (region, alias), idx in groups.items():
            model = self.forecasters.get((region, alias))
            if model is None:
                for i in idx:
                    out[i] = self._fallback(plans[i], f"model {alias!r} for {region!r} is not loaded")
                continue
            try:
                results = model.predict_series([plans[i].request() for i in idx])
            except Exception:  # one bad request must not sink the batch
                logger.exception("batch predict failed for %s/%s; answering from the fallback", region, alias)
                results = [None] * len(idx)
            served = plans[idx[0]].served
            for i, result in zip(idx, results, strict=True):
                if isinstance(result, Forecast) and plausible(result, served):
                    out[i] = Answer(result, alias, served.tag)
                elif isinstance(result, Forecast):
                    logger.warning("%s/%s gave an implausible forecast (origin %s); fallback answers",
                                   region, alias, plans[i].origin)
                    self.metrics.count("implausible", alias=alias)
                    out[i] = self._fallback(plans[i], f"model {alias!r} gave an implausible forecast")
                else:
                    reason = result.detail if isinstance(result, GridcastError) else f"model {alias!r} failed"
                    out[i] = self._fallback(plans[i], reason)
        return out  # type: ignore[return-value]

    def _fallback(self, plan: Plan, reason: str) -> Answer | GridcastError:
        """The served seasonal naive on the same history, else a profile of that history."""
        region = plan.served.region
        naive = self.forecasters.get((region, "naive"))
        served = self.catalog.get(region, "naive")
        self.metrics.count("fallback", alias=plan.served.alias)
        if naive is not None and served is not None and plan.served.alias != "naive":
            (result,) = naive.predict_series([plan.request()])
            if isinstance(result, Forecast) and plausible(result, served):
                return Answer(result, "naive", served.tag, reason)
        if plan.history is not None:
            try:
                result = profile_fallback(plan.history, horizon=plan.query.horizon, level=plan.level)
            except GridcastError:
                pass
            else:
                if plausible(result, None):
                    return Answer(result, "naive", "seasonal-naive-profile", reason)
        return InsufficientDataError(
            f"{reason}; and too little history for the seasonal-naive fallback (needs at least one day)",
            field="history",
        )


# ---- the core ---------------------------------------------------------------------------------


class ForecastCore:
    """plan → run → respond, for lists of queries; the same code for every adapter.

    Args:
        settings: bounds (horizon, history, batch), cache TTL cap.
        catalog: the served models.
        runner: the loaded models (needed by :meth:`forecast`; the service runs them
            behind its batcher instead).
        state: recent observations by region (None: requests bring their own history).
        cache: finished responses by key (None: no cache).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        catalog: ModelCatalog,
        runner: ModelRunner | None = None,
        state: StateReader | None = None,
        cache: ResponseCache | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.runner = runner
        self.state = state
        self.cache = cache
        self.metrics = metrics or _NoMetrics()
        self.clock = clock

    # -- everything in this process (the bridge, tests, the CLI) ------------------------------
    def forecast(self, queries: Sequence[Query]) -> list[dict]:
        """Answer queries with the in-process models, as response documents.

        Raises:
            UserInputError: a query is invalid (``field`` says where).
            InsufficientDataError: a query that no model, not even the fallback, can answer.
        """
        if self.runner is None:
            raise RuntimeError("ForecastCore.forecast needs a ModelRunner")
        plans = self.plan(queries)
        todo = [p for p in plans if p.cached is None]
        answers = dict(zip(map(id, todo), self.runner.run(todo), strict=True)) if todo else {}
        out = []
        for plan in plans:
            if plan.cached is not None:
                out.append(orjson.loads(hit(plan.cached, plan.degraded)))
                continue
            answer = answers[id(plan)]
            if isinstance(answer, GridcastError):
                raise answer
            out.append(orjson.loads(self.respond(plan, answer)))
        return out

    # -- step 1: validate, history, cache -------------------------------------------------------
    def plan(self, queries: Sequence[Query]) -> list[Plan]:
        if len(queries) > self.settings.max_batch_requests:
            raise UserInputError(
                f"at most {self.settings.max_batch_requests} requests per batch, got {len(queries)}",
                field="requests",
            )
        plans = []
        for i, query in enumerate(queries):
            try:
                plans.append(self._plan_one(query))
            except UserInputError as exc:
                if len(queries) > 1:
                    exc.field = f"requests[{i}].{exc.field}" if exc.field else f"requests[{i}]"
                raise
        return plans

    def _plan_one(self, query: Query) -> Plan:
        s = self.settings
        if not 1 <= query.horizon <= s.max_horizon:
            raise UserInputError(f"horizon must be 1..{s.max_horizon}, got {query.horizon}", field="horizon")
        level = check_level(query.level)
        if len(set(level)) != len(level):
            raise UserInputError(f"interval levels repeat: {list(level)}", field="level")
        level = tuple(sorted(level))
        served = self.catalog.resolve(query.region, query.model)
        degraded: list[str] = []
        if query.history is not None:
            history = on_grid(query.history, served.step, "history", max_points=s.max_history_points)
            source = "request"
        else:
            # only the state's last timestamp is needed to find a cached answer: the history
            # itself is read after a miss (below)
            end = self._state_end(served, degraded)
            if end is None or end == served.context_end:
                history, source = None, "model"
            elif isinstance(end, Series):  # a reader without last_timestamp gave the history itself
                history, source = end, "state"
            else:
                history, source = _UNREAD, "state"
        weather = None
        if query.weather is not None:
            weather = on_grid(query.weather, served.step, "weather", max_points=query.horizon + 7 * 86400 // served.step)
        origin = (end if history is _UNREAD else history.end) if history is not None else served.context_end
        if weather is not None and origin is not None and weather.start <= origin:
            raise UserInputError(
                f"weather must start after the last observation ({iso(origin)}), starts {iso(weather.start)}",
                field="weather[0].timestamp",
            )
        vintage = None
        if weather is None:
            # No weather in the request: the latest weather-forecast vintage the state holds
            # for the region, cut to this horizon (None when there is none, it does not
            # reach past the origin, or the state reader keeps no vintages).
            vintage = self._latest_vintage(query.region, degraded)
            weather = covariates(vintage, origin=origin, horizon=query.horizon, step=served.step)
            vintage = vintage if weather is not None else None
        plan = Plan(query, served, level, history, weather, source, origin, degraded=degraded, vintage=vintage)
        if self.cache is not None and origin is not None:
            token = iso(origin)
            if source == "request" or query.weather is not None:
                # a client's own history (or weather) makes a different forecast for the same origin
                token += "#" + "".join(x.digest() for x in (history, weather if query.weather is not None else None)
                                       if x is not None)
            token = vintage_token(token, vintage.issued_at if vintage is not None else None)
            plan.key = cache_key(query.region, served.alias, served.tag, token, query.horizon, level)
            plan.cached = self._cache_get(plan)
        if plan.history is _UNREAD:
            plan.history = None
            if plan.cached is None:
                plan.history = self._state_history(served, degraded)
                if plan.history is None or plan.history.end != origin:  # the state moved on meanwhile
                    plan.source, plan.origin, plan.key = ("model", served.context_end, None) \
                        if plan.history is None else ("state", plan.history.end, None)
        return plan

    def _state_end(self, served: ServedModel, degraded: list[str]) -> int | Series | None:
        """Epoch seconds of the state's last observation for the region (None: no state)."""
        if self.state is None:
            return None
        last = getattr(self.state, "last_timestamp", None)
        if last is None:
            return self._state_history(served, degraded)
        try:
            ts = last(served.region)
        except Exception:  # Redis down: answer from the model's own tail, flagged
            logger.warning("state store unavailable; forecasting from the model's own history", exc_info=True)
            degraded.append("state")
            self.metrics.count("state_error")
            return None
        return None if ts is None else int(pd.Timestamp(ts).value // 10**9)

    def _state_history(self, served: ServedModel, degraded: list[str]) -> Series | None:
        """Recent observations from the state store, or None when the model's own context is as fresh.

        A model keeps the end of the data it was trained on (its context); when the store
        ends exactly where that context ends (the embedded default, seeded from that same
        tail) the model forecasts from its context, which also carries the weather the
        store may lack. Any other store content (newer data, a replay of older data) is used.
        """
        if self.state is None:
            return None
        try:
            frame = self.state.history(served.region, n=self.settings.max_history_points)
        except Exception:  # Redis down: answer from the model's own tail, flagged
            logger.warning("state store unavailable; forecasting from the model's own history", exc_info=True)
            degraded.append("state")
            self.metrics.count("state_error")
            return None
        if frame is None or len(frame) == 0 or LOAD not in frame.columns:
            return None
        if isinstance(frame, Series) and frame.step == served.step:  # a store that keeps arrays (the bridge's)
            series = Series(frame.start, frame.step, {c: v for c, v in frame.columns.items() if c in (LOAD, *WEATHER)})
        else:
            if isinstance(frame, Series):
                frame = frame.to_frame()
            series = Series.from_frame(frame[[c for c in (LOAD, *WEATHER) if c in frame.columns]], step=served.step)
        if served.context_end is not None and series.end == served.context_end:
            return None
        return series

    def _latest_vintage(self, region: str, degraded: list[str]) -> Vintage | None:
        latest = getattr(self.state, "latest_weather", None)
        if latest is None:
            return None
        try:
            return latest(region)
        except Exception:  # Redis down: the no-weather path, flagged like the history
            logger.warning("state store unavailable; forecasting without a weather vintage", exc_info=True)
            if "state" not in degraded:
                degraded.append("state")
            return None

    def _cache_get(self, plan: Plan) -> bytes | None:
        value = self.cache.get_bytes(plan.key)
        if not getattr(self.cache, "available", True):
            plan.degraded.append("cache")
        self.metrics.count("cache_hit" if value is not None else "cache_miss")
        return value

    # -- step 3: response, cache -----------------------------------------------------------------
    def respond(self, plan: Plan, answer: Answer) -> bytes:
        """The response bytes (``orjson.loads`` them for the document); a model's own answer is cached."""
        body = render_bytes(plan, answer, issued_at=self.clock())
        if plan.key is not None and answer.fallback_reason is None:
            ttl = cache_ttl(plan.origin, plan.served.step, now=self.clock().timestamp(), cap=self.settings.cache_ttl_s)
            self.cache.set_bytes(plan.key, body, ttl)
            if not getattr(self.cache, "available", True) and "cache" not in plan.degraded:
                plan.degraded.append("cache")
        if plan.degraded:
            body = hit(body, plan.degraded, cached=False)
        return body


def render(plan: Plan, answer: Answer, *, issued_at: datetime) -> dict:
    """The response document: :func:`render_bytes`, parsed."""
    return orjson.loads(render_bytes(plan, answer, issued_at=issued_at))


def render_bytes(plan: Plan, answer: Answer, *, issued_at: datetime) -> bytes:
    """The response's JSON bytes (``cached`` and ``degraded`` first: see :func:`hit`).

    The points are written column-wise: each array's numbers by one orjson call, then
    every point's pieces interleaved and joined once (a point's dicts are never built);
    the rest of the document by orjson. The bytes equal ``orjson.dumps`` of the
    document built point by point (tests/gridcast/test_forecast.py checks it).
    """
    fc = answer.forecast
    level = list(plan.level)
    widest = max(level)
    n = len(fc.mean)
    arrays = [fc.mean, fc.lower[widest], fc.upper[widest]]
    for lv in level:
        arrays += [fc.lower[lv], fc.upper[lv]]
    numbers = json_numbers(np.concatenate(arrays))  # one orjson call for every number
    columns = [iso_stamps(fc.start, fc.step, n), *(numbers[j * n:(j + 1) * n] for j in range(len(arrays)))]
    points = points_json([str(lv) for lv in level], columns) if n else ""
    origin = plan.origin if plan.origin is not None else fc.start - fc.step
    head = orjson.dumps({
        "cached": False,
        "degraded": [],
        "weather_issued_at": plan.vintage.issued_iso if plan.vintage is not None else None,
        "region": plan.query.region,
        "model": answer.alias,
        "requested_model": plan.query.model,
        "model_version": answer.version,
        "issued_at": issued_at.isoformat(),
        "origin": iso(origin),
        "level": level,
    })
    tail = orjson.dumps({
        "fallback": answer.fallback_reason is not None,
        "fallback_reason": answer.fallback_reason,
        "history_source": plan.source,
    })
    return b"".join((head[:-1], b',"points":[', points.encode(), b"],", tail[1:]))


def vintage_token(origin_token: str, issued_at: int | None) -> str:
    """A cache-key origin part with the weather vintage it was forecast with (the bridge and the service agree).

    Example:
        >>> vintage_token("2024-01-01T00:00:00+00:00", 1704060000), vintage_token("x", None)
        ('2024-01-01T00:00:00+00:00@w1704060000', 'x')
    """
    return origin_token if issued_at is None else f"{origin_token}@w{issued_at}"


def hit(stored: bytes, degraded: Sequence[str] = (), *, cached: bool = True) -> bytes:
    """A stored response with its flags set: no parsing, no re-serialising."""
    if not stored.startswith(STORED_PREFIX):  # written by something else: re-encode once
        doc = orjson.loads(stored)
        doc.update(cached=cached, degraded=list(degraded))
        return orjson.dumps(doc)
    if cached and not degraded:
        return b'{"cached":true,"degraded":[],' + stored[len(STORED_PREFIX):]
    head = b'{"cached":' + (b"true" if cached else b"false") + b',"degraded":' + orjson.dumps(list(degraded)) + b","
    return head + stored[len(STORED_PREFIX):]


def cache_ttl(origin: int | None, step: int, *, now: float, cap: int) -> int:
    """Until the next data point is due (origin + 2 steps: it must be complete), capped.

    Example:
        >>> cache_ttl(3600, 3600, now=3600.0, cap=600), cache_ttl(None, 3600, now=0.0, cap=600)
        (600, 600)
    """
    if origin is None:
        return cap
    left = origin + 2 * step - now
    return int(min(cap, left)) if left >= 1 else cap
