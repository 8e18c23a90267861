"""How the bridge turns a region's recent history into a forecast: three pluggable ways.

* ``inprocess`` — the service's storage-free core (:class:`service.core.ForecastCore`)
  over the models served in the BentoML store, in this process. Regions without a
  served model get the seasonal naive (the documented fallback).
* ``http`` — ``POST {settings.service_url}/forecast_batch``: the running service
  answers, so its adaptive batching applies. It reads the same Redis state the bridge
  has just written. Unknown regions get the local seasonal naive.
* ``naive`` — seasonal naive over the state history only: no model store, no service
  (tests, benchmarks of the pipeline itself, a bare deployment).

Every way returns the service's response shape (:class:`service.schemas.ForecastResult`
as a dict), so consumers of ``gridcast.forecasts`` and of the Redis cache see one format.
A job that cannot be answered (too little history) returns ``{"error", "detail", "field"}``;
an outage (service down) raises :class:`ForecastUnavailable` so the bridge retries and
does not commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from gridcast.errors import GridcastError, InsufficientDataError, ModelNotFoundError
from gridcast.schema import LOAD
from gridcast.settings import Settings

logger = logging.getLogger(__name__)


class ForecastUnavailable(GridcastError):
    """The forecasting backend is down; the bridge retries with backoff."""

    code = "forecast_unavailable"


@dataclass(frozen=True)
class Job:
    """One forecast the bridge needs: for a completed data point, or for a request."""

    region: str
    horizon: int
    level: tuple[int, ...]
    model: str = "best"
    request_id: str | None = None
    query: Mapping[str, Any] | None = None  # a request's full query (history, weather)


class StreamForecaster(Protocol):
    def prepare(self) -> None: ...

    async def forecast(self, jobs: Sequence[Job], histories: Mapping[str, pd.DataFrame]) -> list[dict]: ...

    async def close(self) -> None: ...


def regular(history: pd.DataFrame, step: pd.Timedelta) -> pd.DataFrame:
    """The history on a regular grid ending at its last point (missing steps = NaN)."""
    if history.empty:
        return history
    grid = pd.date_range(history.index[0], history.index[-1], freq=step, name=history.index.name)
    return history.reindex(grid)


def error_result(job: Job, exc: GridcastError) -> dict:
    return {"region": job.region, "error": exc.code, "detail": exc.detail, "field": exc.field}


def naive_result(
    job: Job, history: pd.DataFrame, *, step: pd.Timedelta, reason: str | None, clock: Callable[[], datetime]
) -> dict:
    """The seasonal naive forecast in the service's response shape.

    Exactly :class:`gridcast.models.base.SeasonalNaive` fitted on the history (weekly
    when a week exists, else daily; holes filled from the previous step), computed
    with numpy: the bridge forecasts hundreds of regions a second and the pandas path
    costs ~50x more per call. ``tests/streaming/test_forecasting.py`` holds the two equal.
    Fewer than one day of history answers with an ``insufficient_data`` error result.
    """
    step_s = int(step.total_seconds())
    per_day = 86400 // step_s
    level = tuple(sorted(job.level))
    epochs = pd.DatetimeIndex(history.index).as_unit("s").asi8 if len(history) else np.empty(0, dtype="int64")
    n = int((epochs[-1] - epochs[0]) // step_s + 1) if len(epochs) else 0
    y = np.full(n, np.nan)
    if n:
        y[(epochs - epochs[0]) // step_s] = history[LOAD].to_numpy(dtype=float)
    if n < per_day or np.isfinite(y).sum() < 2:
        exc = InsufficientDataError(
            f"region {job.region!r} has {n} recent steps; a forecast needs at least {per_day}", field="history"
        )
        return error_result(job, exc)
    y = pd.Series(y).ffill().bfill().to_numpy()
    season = 7 * per_day if n >= 7 * per_day else per_day
    diffs = y[season:] - y[:-season]
    sigma = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0
    steps = np.arange(job.horizon)
    mean = y[-season:][steps % season]
    spread = sigma * np.sqrt(steps // season + 1)
    bounds = {lv: (mean - _z(lv) * spread, mean + _z(lv) * spread) for lv in level}
    last = int(epochs[-1])
    stamps = [datetime.fromtimestamp(last + step_s * (i + 1), UTC).isoformat() for i in range(job.horizon)]
    widest = max(level)
    points = []
    for i, ts in enumerate(stamps):
        intervals = {str(lv): {"lower": float(lo[i]), "upper": float(hi[i])} for lv, (lo, hi) in bounds.items()}
        points.append({"timestamp": ts, "mean": float(mean[i]), "lower": intervals[str(widest)]["lower"],
                       "upper": intervals[str(widest)]["upper"], "intervals": intervals})
    return _envelope(job, points, model="naive", version=f"seasonal-naive-{'weekly' if season > per_day else 'daily'}",
                     origin=datetime.fromtimestamp(last, UTC).isoformat(), reason=reason, clock=clock)


_Z: dict[int, float] = {}


def _z(level: int) -> float:
    """Normal quantile of a central interval (cached: scipy's ppf is slow per call)."""
    if level not in _Z:
        from scipy.stats import norm

        _Z[level] = float(norm.ppf(0.5 + level / 200))
    return _Z[level]


def _envelope(job: Job, points: list[dict], *, model: str, version: str, origin: str, reason: str | None,
              clock: Callable[[], datetime]) -> dict:
    return {
        "region": job.region, "model": model, "requested_model": job.model, "model_version": version,
        "issued_at": clock().isoformat(), "origin": origin, "level": sorted(job.level), "points": points,
        "cached": False, "fallback": reason is not None, "fallback_reason": reason,
        "history_source": "state", "degraded": [],
    }


class NaiveForecaster:
    """Seasonal naive over the state history: no model store, no service."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.step = pd.Timedelta(seconds=settings.stream_step_s)
        self.clock = clock

    def prepare(self) -> None:
        """Pay the one-off costs (scipy import, quantiles) before the first message waits on them."""
        for level in self.settings.levels:
            _z(level)

    async def forecast(self, jobs: Sequence[Job], histories: Mapping[str, pd.DataFrame]) -> list[dict]:
        # inline, not in a thread: ~0.3 ms of numpy per job, and a thread hop costs more
        # than that on a busy machine
        return self._forecast(jobs, histories)

    def _forecast(self, jobs: Sequence[Job], histories: Mapping[str, pd.DataFrame]) -> list[dict]:
        return [self.one(job, histories.get(job.region), reason=None) for job in jobs]

    def one(self, job: Job, history: pd.DataFrame | None, *, reason: str | None) -> dict:
        if job.query and job.query.get("history"):
            rows = job.query["history"]
            history = pd.DataFrame(
                {LOAD: [float(r["load_mw"]) for r in rows]},
                index=pd.DatetimeIndex(pd.to_datetime([r["timestamp"] for r in rows], utc=True), name="timestamp"),
            )
        if history is None:
            history = pd.DataFrame({LOAD: []}, index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
        return naive_result(job, history, step=self.step, reason=reason, clock=self.clock)

    async def close(self) -> None:
        return None


class _Prefetched:
    """A read-only state store over histories the bridge already read (one round trip)."""

    def __init__(self, histories: Mapping[str, pd.DataFrame]) -> None:
        self.histories = histories

    def history(self, region: str, n: int | None = None) -> pd.DataFrame:
        frame = self.histories.get(region)
        if frame is None:
            return pd.DataFrame({LOAD: []}, index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
        return frame if n is None else frame.iloc[-n:]


class InProcessForecaster:
    """The service's core with the store's served models, loaded once at start."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.clock = clock
        self.naive = NaiveForecaster(settings, clock=clock)
        self._models: Any = None

    def prepare(self) -> None:
        self.naive.prepare()
        self.load()

    def load(self) -> None:
        """Load the served models (slow: call from a thread at start-up)."""
        from service.core import LocalModels, ModelCatalog
        from gridcast.store import load_forecaster, served_models

        stored = served_models()
        catalog = ModelCatalog.from_store(stored)
        forecasters = {(s.region, s.alias): load_forecaster(s.tag) for s in stored}
        self._models = LocalModels(catalog, forecasters)
        logger.info("bridge: %d served model(s) loaded for %d region(s)", len(forecasters), len(catalog.regions()))

    async def forecast(self, jobs: Sequence[Job], histories: Mapping[str, pd.DataFrame]) -> list[dict]:
        if self._models is None:
            await asyncio.to_thread(self.load)
        return await asyncio.to_thread(self._forecast, jobs, histories)

    def _forecast(self, jobs: Sequence[Job], histories: Mapping[str, pd.DataFrame]) -> list[dict]:
        from service.core import ForecastCore
        from service.schemas import ForecastQuery

        step = self.naive.step
        state = _Prefetched({r: regular(h, step) for r, h in histories.items()})
        core = ForecastCore(settings=self.settings, models=self._models, state=state, cache=None, clock=self.clock)
        served = set(self._models.catalog.regions())
        results: list[dict] = []
        for job in jobs:
            if job.region not in served:
                reason = f"no model is served for region {job.region!r}"
                results.append(self.naive.one(job, state.history(job.region), reason=reason))
                continue
            query = dict(job.query or {"region": job.region, "model": job.model, "horizon": job.horizon,
                                       "level": list(job.level)})
            try:
                results.append(core.forecast([ForecastQuery.model_validate(query)])[0])
            except ModelNotFoundError as exc:
                results.append(self.naive.one(job, state.history(job.region), reason=exc.detail))
            except GridcastError as exc:
                results.append(error_result(job, exc))
        return results

    async def close(self) -> None:
        return None


class HttpForecaster:
    """The running service answers (``POST /forecast_batch``), so its batching applies."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        import httpx

        self.settings = settings
        self.naive = NaiveForecaster(settings, clock=clock)
        self.client = httpx.AsyncClient(base_url=settings.service_url, timeout=30.0)

    def prepare(self) -> None:
        self.naive.prepare()

    async def forecast(self, jobs: Sequence[Job], histories: Mapping[str, pd.DataFrame]) -> list[dict]:
        results: list[dict] = []
        size = self.settings.max_batch_requests
        for i in range(0, len(jobs), size):
            chunk = jobs[i : i + size]
            body = {"requests": [self._query(j) for j in chunk]}
            status, payload = await self._post("/forecast_batch", body)
            if status == 200:
                results += payload["results"]
                continue
            # one bad query fails the whole batch: ask one by one to isolate it
            for job in chunk:
                status, payload = await self._post("/forecast", self._query(job))
                if status == 200:
                    results.append(payload)
                elif payload.get("error") == ModelNotFoundError.code:
                    results.append(self.naive.one(job, histories.get(job.region), reason=payload.get("detail")))
                else:
                    results.append({"region": job.region, "error": payload.get("error", f"http_{status}"),
                                    "detail": payload.get("detail", ""), "field": payload.get("field")})
        return results

    @staticmethod
    def _query(job: Job) -> dict:
        return dict(job.query or {"region": job.region, "model": job.model, "horizon": job.horizon,
                                  "level": list(job.level)})

    async def _post(self, path: str, body: dict) -> tuple[int, dict]:
        import httpx

        try:
            resp = await self.client.post(path, json=body)
        except httpx.TransportError as exc:
            raise ForecastUnavailable(f"service at {self.settings.service_url} unreachable: {type(exc).__name__}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ForecastUnavailable(f"service answered {resp.status_code} on {path}")
        try:
            return resp.status_code, resp.json()
        except ValueError:
            raise ForecastUnavailable(f"service answered {resp.status_code} with a non-JSON body") from None

    async def close(self) -> None:
        await self.client.aclose()


def make_forecaster(settings: Settings) -> StreamForecaster:
    """The forecaster ``settings.forecast_via`` names ('inprocess', 'http' or 'naive')."""
    kinds = {"inprocess": InProcessForecaster, "http": HttpForecaster, "naive": NaiveForecaster}
    try:
        return kinds[settings.forecast_via](settings)
    except KeyError:
        from gridcast.errors import UserInputError

        raise UserInputError(
            f"forecast_via must be one of {', '.join(kinds)}, got {settings.forecast_via!r}", field="forecast_via"
        ) from None
