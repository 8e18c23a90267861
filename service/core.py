"""The storage-free forecasting core shared by the Bento service and the streaming bridge.

One fixed order for every request (OpenSTEF's ``create_forecast`` split, adapted):

    validate → history → cache lookup → predict (batched) → fallback → response

Nothing here knows about HTTP, BentoML, Redis or Kafka: the state store, the cache and
the models arrive as arguments (``ForecastCore(*, settings, models, state, cache)``),
so the service, the bridge and the tests call the very same code.

The predict step is split out (:meth:`ForecastCore.plan` / :meth:`ForecastCore.complete`)
because the service sends the model calls of many concurrent requests through BentoML's
adaptive batching in another process, while the bridge and the tests call
:meth:`ForecastCore.forecast`, which predicts in-process with :class:`LocalModels`.

The fallback lives next to the models (:meth:`LocalModels.predict`): when a model
cannot answer (too little history, missing covariates) the seasonal naive answers the
same call with the same history and says why.
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from gridcast.errors import GridcastError, InsufficientDataError, ModelNotFoundError, UserInputError
from gridcast.models.base import Forecaster, ForecastRequest, SeasonalNaive, check_level
from gridcast.schema import LOAD, WEATHER
from gridcast.settings import Settings

from service.schemas import (
    Columns,
    ForecastQuery,
    ModelAnswer,
    ModelCall,
)

logger = logging.getLogger(__name__)

#: aliases a client may name explicitly (besides "best")
ALIASES = ("lstm", "sarimax", "naive", "ensemble")
#: keys where training records the validation MAPE (under ``metadata["validation"]``)
MAPE_KEYS = ("mape", "val_mape", "validation_mape")
DEFAULT_FREQ = "1h"


# ---- what the core needs from its collaborators ------------------------------------


class StateStore(Protocol):
    def history(self, region: str, n: int | None = None) -> pd.DataFrame: ...


class ForecastCache(Protocol):
    def get(self, key: str) -> dict | None: ...

    def set(self, key: str, value: dict, ttl_s: int) -> None: ...


class Metrics(Protocol):
    def count(self, event: str, **labels: str) -> None: ...


class _NoMetrics:
    def count(self, event: str, **labels: str) -> None:
        return None


# ---- the served models ---------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    """The served version of one (region, alias), as the model store describes it."""

    region: str
    alias: str
    tag: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def mape(self) -> float | None:
        """Validation MAPE recorded at training time (None when training did not record one)."""
        for source in (self.metadata.get("validation") or {}, self.metadata, self.metadata.get("metrics") or {}):
            for key in MAPE_KEYS:
                value = source.get(key) if isinstance(source, Mapping) else None
                if isinstance(value, int | float) and math.isfinite(value):
                    return float(value)
        return None

    @property
    def freq(self) -> str:
        return str(self.metadata.get("freq") or DEFAULT_FREQ)


class ModelCatalog:
    """Which model answers which (region, alias); ``best`` = lowest validation MAPE."""

    def __init__(self, served: Iterable[ServedModel]) -> None:
        self._by_key = {(m.region, m.alias): m for m in served}

    @classmethod
    def from_store(cls, stored: Iterable[Any]) -> ModelCatalog:
        """From :func:`gridcast.store.served_models` rows (``tag, alias, region, metadata``)."""
        return cls(
            ServedModel(region=s.region, alias=s.alias, tag=str(s.tag), metadata=dict(s.metadata or {}))
            for s in stored
        )

    def __iter__(self):
        return iter(sorted(self._by_key.values(), key=lambda m: (m.region, m.alias)))

    def __len__(self) -> int:
        return len(self._by_key)

    def regions(self) -> list[str]:
        return sorted({region for region, _ in self._by_key})

    def get(self, region: str, alias: str) -> ServedModel | None:
        return self._by_key.get((region, alias))

    def resolve(self, region: str, alias: str) -> ServedModel:
        """The served model for a request, or a :class:`UserInputError` naming the field.

        Raises:
            ModelNotFoundError: unknown region (field ``region``) or no such model
                served for it (field ``model``).
        """
        if region not in self.regions():
            known = ", ".join(self.regions()) or "none"
            raise ModelNotFoundError(f"unknown region {region!r}; served regions: {known}", field="region")
        if alias == "best":
            candidates = [m for (r, _), m in self._by_key.items() if r == region]
            scored = [m for m in candidates if m.mape is not None]
            if scored:
                return min(scored, key=lambda m: (m.mape, m.alias))
            # nothing recorded a MAPE: prefer the learned models in a fixed order
            order = {a: i for i, a in enumerate(("ensemble", "lstm", "sarimax", "naive"))}
            return min(candidates, key=lambda m: order.get(m.alias, 99))
        found = self.get(region, alias)
        if found is None:
            served = ", ".join(sorted(a for r, a in self._by_key if r == region))
            raise ModelNotFoundError(
                f"no {alias!r} model is served for region {region!r}; served: {served}", field="model"
            )
        return found


class LocalModels:
    """Loaded forecasters that answer :class:`ModelCall` batches in this process.

    Calls are grouped by (region, alias) so each model sees ONE ``predict_batch`` per
    batch — the LSTM turns that into one Keras call. A call the model cannot answer
    gets the seasonal naive on the same history, and the answer says why.
    """

    def __init__(self, catalog: ModelCatalog, forecasters: Mapping[tuple[str, str], Forecaster]) -> None:
        self.catalog = catalog
        self.forecasters = dict(forecasters)

    def predict(self, calls: Sequence[ModelCall]) -> list[ModelAnswer]:
        groups: dict[tuple[str, str], list[ModelCall]] = defaultdict(list)
        for call in calls:
            groups[(call.region, call.alias)].append(call)
        answers: dict[str, ModelAnswer] = {}
        for (region, alias), group in groups.items():
            answers.update(self._predict_group(region, alias, group))
        return [answers[c.id] for c in calls]

    def _predict_group(self, region: str, alias: str, group: list[ModelCall]) -> dict[str, ModelAnswer]:
        served = self.catalog.get(region, alias)
        model = self.forecasters.get((region, alias))
        requests = [_to_request(c) for c in group]
        out: dict[str, ModelAnswer] = {}
        if model is None or served is None:
            reason = f"model {alias!r} for {region!r} is not loaded"
            return {r.id: self._fallback(region, r, reason) for r in requests}
        try:
            frames = model.predict_batch(requests)
        except InsufficientDataError as exc:
            return {r.id: self._fallback(region, r, exc.detail) for r in requests}
        except Exception:  # one bad request must not sink the batch: retry one by one
            logger.exception("batch predict failed for %s/%s; retrying per request", region, alias)
            frames = {}
            for r in requests:
                try:
                    frames[r.id] = model.predict(r.horizon, r.future_covariates, r.level, history=r.history)
                except GridcastError as exc:
                    out[r.id] = self._fallback(region, r, exc.detail)
                except Exception:
                    logger.exception("predict failed for %s/%s request %s", region, alias, r.id)
                    out[r.id] = self._fallback(region, r, f"model {alias!r} failed on this input")
        for r in requests:
            if r.id in out:
                continue
            frame = frames.get(r.id)
            if frame is None or not np.isfinite(frame.to_numpy(dtype=float)).all():
                out[r.id] = self._fallback(region, r, f"model {alias!r} returned no finite forecast")
            else:
                out[r.id] = ModelAnswer(id=r.id, frame=Columns.from_frame(frame), alias=alias, version=served.tag)
        return out

    def _fallback(self, region: str, request: ForecastRequest, reason: str) -> ModelAnswer:
        """Seasonal naive on the call's history: the served weekly one, else a daily one."""
        served = self.catalog.get(region, "naive")
        naive = self.forecasters.get((region, "naive"))
        tries: list[tuple[Forecaster, str]] = []
        if naive is not None and served is not None:
            tries.append((naive, served.tag))
        if request.history is not None and len(request.history) >= 2:
            try:
                tries.append((SeasonalNaive(season_days=1).fit(request.history), "seasonal-naive-daily"))
            except GridcastError:
                pass
        for model, version in tries:
            try:
                frame = model.predict(request.horizon, None, request.level, history=request.history)
            except GridcastError:
                continue
            return ModelAnswer(
                id=request.id, frame=Columns.from_frame(frame), alias="naive", version=version,
                fallback_reason=reason,
            )
        return ModelAnswer(
            id=request.id, error=InsufficientDataError.code,
            detail=f"{reason}; and too little history for the seasonal-naive fallback (needs at least one day)",
        )


def _to_request(call: ModelCall) -> ForecastRequest:
    return ForecastRequest(
        id=call.id,
        horizon=call.horizon,
        level=tuple(call.level),
        history=call.history.to_frame() if call.history is not None else None,
        future_covariates=call.covariates.to_frame() if call.covariates is not None else None,
    )


# ---- the core ------------------------------------------------------------------------------


@dataclass
class Plan:
    """One validated query on its way through the core."""

    query: ForecastQuery
    served: ServedModel
    history: pd.DataFrame | None
    history_source: str
    origin: pd.Timestamp | None
    key: str | None
    call: ModelCall
    cached: dict | None = None
    degraded: list[str] = field(default_factory=list)


class ForecastCore:
    """validate → history → cache → predict → fallback → response, for a list of queries."""

    def __init__(
        self,
        *,
        settings: Settings,
        models: ModelCatalog | LocalModels,
        state: StateStore | None,
        cache: ForecastCache | None,
        metrics: Metrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.local = models if isinstance(models, LocalModels) else None
        self.catalog = models.catalog if isinstance(models, LocalModels) else models
        self.state = state
        self.cache = cache
        self.metrics = metrics or _NoMetrics()
        self.clock = clock

    # -- the whole path, in-process --------------------------------------------------
    def forecast(self, queries: Sequence[ForecastQuery]) -> list[dict]:
        """Answer queries with the in-process models (the bridge, tests, the CLI).

        Raises:
            UserInputError: a query is invalid (``field`` names what, with its index
                when there are several queries).
        """
        if self.local is None:
            raise RuntimeError("ForecastCore.forecast needs LocalModels; the service uses plan/complete")
        plans = self.plan(queries)
        todo = [p.call for p in plans if p.cached is None]
        answers = self.local.predict(todo) if todo else []
        return self.complete(plans, answers)

    # -- step 1-3: validate, history, cache -------------------------------------------
    def plan(self, queries: Sequence[ForecastQuery]) -> list[Plan]:
        if len(queries) > self.settings.max_batch_requests:
            raise UserInputError(
                f"at most {self.settings.max_batch_requests} requests per batch, got {len(queries)}",
                field="requests",
            )
        plans = []
        for i, query in enumerate(queries):
            try:
                # ids must be unique across requests: the batcher merges many requests' calls
                plans.append(self._plan_one(query, f"{uuid.uuid4().hex}-{i}"))
            except UserInputError as exc:
                if len(queries) > 1:
                    exc.field = f"requests[{i}].{exc.field}" if exc.field else f"requests[{i}]"
                raise
        return plans

    def _plan_one(self, query: ForecastQuery, call_id: str) -> Plan:
        s = self.settings
        if query.horizon > s.max_horizon:
            raise UserInputError(f"horizon must be 1..{s.max_horizon}, got {query.horizon}", field="horizon")
        level = check_level(query.level)
        if len(set(level)) != len(level):
            raise UserInputError(f"interval levels repeat: {list(level)}", field="level")
        served = self.catalog.resolve(query.region, query.model)
        step = pd.Timedelta(served.freq)
        degraded: list[str] = []

        if query.history is not None:
            history = history_frame(query, step=step, max_points=s.max_history_points)
            source = "request"
        else:
            history = self._state_history(served, degraded)
            source = "state" if history is not None else "model"
        covariates = weather_frame(query, step=step, origin=history.index[-1] if history is not None else None)

        origin = history.index[-1] if history is not None else _model_end(served)
        key = None
        if self.cache is not None and origin is not None:
            from gridcast.cache import cache_key

            origin_token = origin.isoformat()
            if source == "request" or covariates is not None:
                # a client's own history (or weather) makes a different forecast for the same origin
                origin_token += "#" + _digest(history, covariates)
            key = cache_key(query.region, served.alias, served.tag, origin_token, query.horizon, tuple(level))
        call = ModelCall(
            id=call_id, region=query.region, alias=served.alias, horizon=query.horizon, level=list(level),
            history=Columns.from_frame(history) if history is not None else None,
            covariates=Columns.from_frame(covariates) if covariates is not None else None,
        )
        plan = Plan(query, served, history, source, origin, key, call, degraded=degraded)
        if key is not None:
            plan.cached = self._cache_get(key, plan)
        return plan

    def _state_history(self, served: ServedModel, degraded: list[str]) -> pd.DataFrame | None:
        """Recent observations from the state store, or None when the model's own context is as fresh.

        A model keeps the end of the data it was trained on (its context); when the store
        ends exactly where that context ends — the embedded default, seeded from that same
        tail — the model forecasts from its context, which also carries the weather the
        store may lack. Any other store (newer data, or a replay of older data) is used.
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
        frame = frame.sort_index()
        context_end = _model_end(served)
        if context_end is not None and frame.index[-1] == context_end:
            return None
        return frame[[c for c in (LOAD, *WEATHER) if c in frame.columns]].astype(float)

    def _cache_get(self, key: str, plan: Plan) -> dict | None:
        value = self.cache.get(key)
        if not _cache_ok(self.cache):
            plan.degraded.append("cache")
        if value is None:
            self.metrics.count("cache_miss")
            return None
        self.metrics.count("cache_hit")
        return value

    # -- step 4-6: answers → fallback flags → response, cache -----------------------------
    def complete(self, plans: Sequence[Plan], answers: Sequence[ModelAnswer]) -> list[dict]:
        by_id = {a.id: a for a in answers}
        results = []
        for plan in plans:
            if plan.cached is not None:
                result = dict(plan.cached, cached=True, degraded=plan.degraded)
                results.append(result)
                continue
            answer = by_id.get(plan.call.id)
            if answer is None:
                raise RuntimeError(f"no model answer for call {plan.call.id}")
            if answer.error is not None or answer.frame is None:
                raise InsufficientDataError(answer.detail or "the model could not answer", field="history")
            if answer.fallback_reason:
                self.metrics.count("fallback", alias=plan.served.alias)
            result = self._response(plan, answer)
            if plan.key is not None and not answer.fallback_reason:
                self.cache.set(plan.key, result, self._ttl(plan))
                if not _cache_ok(self.cache) and "cache" not in plan.degraded:
                    plan.degraded.append("cache")
            results.append(dict(result, cached=False, degraded=plan.degraded))
        return results

    def _response(self, plan: Plan, answer: ModelAnswer) -> dict:
        frame = answer.frame.to_frame()
        level = sorted(plan.call.level)
        widest = max(level)
        points = []
        for ts, row in frame.iterrows():
            intervals = {str(lv): {"lower": float(row[f"lo-{lv}"]), "upper": float(row[f"hi-{lv}"])} for lv in level}
            points.append({
                "timestamp": ts.isoformat(),
                "mean": float(row["mean"]),
                "lower": intervals[str(widest)]["lower"],
                "upper": intervals[str(widest)]["upper"],
                "intervals": intervals,
            })
        origin = plan.origin if plan.origin is not None else frame.index[0] - pd.Timedelta(plan.served.freq)
        return {
            "region": plan.query.region,
            "model": answer.alias or plan.served.alias,
            "requested_model": plan.query.model,
            "model_version": answer.version or plan.served.tag,
            "issued_at": self.clock().isoformat(),
            "origin": origin.isoformat(),
            "level": level,
            "points": points,
            "cached": False,
            "fallback": bool(answer.fallback_reason),
            "fallback_reason": answer.fallback_reason,
            "history_source": plan.history_source,
            "degraded": [],
        }

    def _ttl(self, plan: Plan) -> int:
        """Until the next data point is due (origin + 2 steps: it must be complete), capped."""
        cap = self.settings.cache_ttl_s
        if plan.origin is None:
            return cap
        due = plan.origin + 2 * pd.Timedelta(plan.served.freq)
        left = (due - pd.Timestamp(self.clock())).total_seconds()
        return int(min(cap, left)) if left >= 1 else cap


# ---- request → frames ------------------------------------------------------------------------


def history_frame(query: ForecastQuery, *, step: pd.Timedelta, max_points: int) -> pd.DataFrame:
    """The request's history as a model frame, checked: bounded, increasing, on the grid.

    Raises:
        UserInputError: too many points, timestamps not increasing, off the model's
            grid, or with a gap (``field`` points at the first bad element).
    """
    obs = query.history or []
    if len(obs) > max_points:
        raise UserInputError(f"history has {len(obs)} points; at most {max_points} allowed", field="history")
    if not obs:
        raise UserInputError("history is empty; omit it to use the service's state", field="history")
    index = pd.DatetimeIndex([pd.Timestamp(o.timestamp).tz_convert("UTC") for o in obs], name="timestamp")
    _check_grid(index, step, "history")
    columns = [LOAD, *[c for c in WEATHER if any(getattr(o, c) is not None for o in obs)]]
    data = {c: [getattr(o, c) for o in obs] for c in columns}
    return pd.DataFrame(data, index=index, dtype="float64")


def weather_frame(query: ForecastQuery, *, step: pd.Timedelta, origin: pd.Timestamp | None) -> pd.DataFrame | None:
    """The request's future weather as covariates (checked like the history), or None."""
    points = query.weather
    if not points:
        return None
    if len(points) > query.horizon + 24 * 7:
        raise UserInputError(f"weather has {len(points)} points for horizon {query.horizon}", field="weather")
    index = pd.DatetimeIndex([pd.Timestamp(p.timestamp).tz_convert("UTC") for p in points], name="timestamp")
    _check_grid(index, step, "weather")
    if origin is not None and index[0] <= origin:
        raise UserInputError(
            f"weather must start after the last observation ({origin.isoformat()}), starts {index[0].isoformat()}",
            field="weather[0].timestamp",
        )
    columns = [c for c in WEATHER if any(getattr(p, c) is not None for p in points)]
    return pd.DataFrame({c: [getattr(p, c) for p in points] for c in columns}, index=index, dtype="float64")


def _check_grid(index: pd.DatetimeIndex, step: pd.Timedelta, name: str) -> None:
    epoch = pd.Timestamp(0, tz="UTC")
    off = (index - epoch) % step != pd.Timedelta(0)
    if off.any():
        i = int(np.argmax(off))
        raise UserInputError(
            f"{name}[{i}].timestamp {index[i].isoformat()} is not on the model's {step} grid",
            field=f"{name}[{i}].timestamp",
        )
    diffs = index[1:] - index[:-1]
    bad = diffs <= pd.Timedelta(0)
    if bad.any():
        i = int(np.argmax(bad)) + 1
        raise UserInputError(
            f"{name} timestamps must be strictly increasing; {name}[{i}] is {index[i].isoformat()} "
            f"after {index[i - 1].isoformat()}",
            field=f"{name}[{i}].timestamp",
        )
    gaps = diffs != step
    if gaps.any():
        i = int(np.argmax(gaps)) + 1
        raise UserInputError(
            f"{name} has a gap before {name}[{i}] ({index[i - 1].isoformat()} → {index[i].isoformat()}); "
            f"send every {step} step",
            field=f"{name}[{i}].timestamp",
        )


def _digest(*frames: pd.DataFrame | None) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    for frame in frames:
        if frame is not None:
            h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()[:16]


def _model_end(served: ServedModel) -> pd.Timestamp | None:
    end = served.metadata.get("context_end") or served.metadata.get("train_end")
    if not end:
        return None
    ts = pd.Timestamp(end)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _cache_ok(cache: Any) -> bool:
    """Whether the cache's backend answered last time (Redis caches expose ``available``)."""
    return bool(getattr(cache, "available", True))
