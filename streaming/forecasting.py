"""How the bridge turns a region's recent history into a forecast: three pluggable ways.

* ``inprocess`` — the core's forecast path (:class:`gridcast.forecast.ForecastCore`)
  over the models served in the BentoML store, in this process: every job of a poll
  (all due regions and requests) is planned, then computed in ONE batched call per
  (region, alias), exactly as the service computes its batches. Regions without a
  served model get the seasonal-naive profile (the documented fallback).
* ``http`` — ``POST {settings.service_url}/forecast_batch``: the running service
  answers. It reads the same Redis state the bridge has just written. Unknown
  regions get the local seasonal naive.
* ``naive`` — the seasonal-naive profile of the state history only
  (:func:`gridcast.models.base.profile_fallback`): no model store, no service (tests,
  benchmarks of the pipeline itself, a bare deployment).

Every way returns the service's response document (:class:`gridcast.wire.ForecastResult`
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

import orjson
import pandas as pd

from gridcast.catalog import ModelCatalog, ServedModel
from gridcast.errors import GridcastError, InsufficientDataError, ModelNotFoundError
from gridcast.forecast import Answer, ForecastCore, ModelRunner, Plan, Query, render
from gridcast.models.base import profile_fallback
from gridcast.schema import LOAD
from gridcast.series import Series
from gridcast.settings import Settings
from gridcast.weather import Vintage

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

    async def forecast(self, jobs: Sequence[Job], histories: Mapping[str, Series | None],
                       weather: Mapping[str, Vintage] | None = None) -> list[dict]: ...

    async def close(self) -> None: ...


def error_result(job: Job, exc: GridcastError) -> dict:
    return {"region": job.region, "error": exc.code, "detail": exc.detail, "field": exc.field}


def _series(history: pd.DataFrame | None, step: int) -> Series | None:
    if history is None or len(history) == 0 or LOAD not in history:
        return None
    return Series.from_frame(history, step=step)


class NaiveForecaster:
    """The seasonal-naive profile of the state history: no model store, no service."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.step = settings.stream_step_s
        self.clock = clock

    def prepare(self) -> None:
        return None

    async def forecast(self, jobs: Sequence[Job], histories: Mapping[str, Series | None],
                       weather: Mapping[str, Vintage] | None = None) -> list[dict]:
        # the seasonal naive takes no covariates: its answers name no vintage
        # inline, not in a thread: well under a millisecond of numpy per job
        return [self.one(job, histories.get(job.region), reason=None) for job in jobs]

    def one(self, job: Job, history: pd.DataFrame | Series | None, *, reason: str | None) -> dict:
        if job.query and job.query.get("history"):
            rows = job.query["history"]
            history = pd.DataFrame(
                {LOAD: [float(r["load_mw"]) for r in rows]},
                index=pd.DatetimeIndex(pd.to_datetime([r["timestamp"] for r in rows], utc=True), name="timestamp"),
            )
        series = history if isinstance(history, Series) or history is None else _series(history, self.step)
        if series is None:
            return error_result(job, InsufficientDataError(f"region {job.region!r} has no recent observations",
                                                           field="history"))
        level = tuple(sorted(job.level))
        try:
            fc = profile_fallback(series, horizon=job.horizon, level=level)
        except GridcastError as exc:
            exc.detail = f"region {job.region!r}: {exc.detail}"
            return error_result(job, exc)
        version = f"seasonal-naive-{'weekly' if len(series) >= 7 * 86400 // series.step else 'daily'}"
        plan = Plan(Query(job.region, job.horizon, job.model, level), ServedModel(job.region, "naive", version),
                    level, series, None, "state", series.end)
        return render(plan, Answer(fc, "naive", version, reason), issued_at=self.clock())

    async def close(self) -> None:
        return None


class _Prefetched:
    """A read-only state store over histories and weather vintages the bridge already read (one round trip)."""

    def __init__(self, histories: Mapping[str, Series | None], weather: Mapping[str, Vintage] | None = None) -> None:
        self.histories = histories
        self.weather = weather or {}

    def latest_weather(self, region: str) -> Vintage | None:
        return self.weather.get(region)

    def history(self, region: str, n: int | None = None) -> Series | None:
        """The region's window as a series (its last ``n`` steps): the core takes it as it is."""
        series = self.histories.get(region)
        if series is None:
            return None
        return series if n is None else series.tail(n)


class InProcessForecaster:
    """The core with the store's served models, loaded once at start; one batched call per poll."""

    #: the bridge hands it the regions' latest weather vintages with the histories
    reads_weather = True

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.clock = clock
        self.naive = NaiveForecaster(settings, clock=clock)
        self.runner: ModelRunner | None = None

    def prepare(self) -> None:
        self.load()

    def load(self) -> None:
        """Load the served models (slow: call from a thread at start-up)."""
        from gridcast.store import load_forecaster, served_models

        stored = served_models()
        catalog = ModelCatalog.from_store(stored)
        forecasters = {(s.region, s.alias): load_forecaster(s.tag) for s in stored}
        self.runner = ModelRunner(catalog, forecasters)
        self.runner.warm_up()
        logger.info("bridge: %d served model(s) loaded for %d region(s)", len(forecasters), len(catalog.regions()))

    async def forecast(self, jobs: Sequence[Job], histories: Mapping[str, Series | None],
                       weather: Mapping[str, Vintage] | None = None) -> list[dict]:
        if self.runner is None:
            await asyncio.to_thread(self.load)
        return await asyncio.to_thread(self._forecast, jobs, histories, weather)

    def _forecast(self, jobs: Sequence[Job], histories: Mapping[str, Series | None],
                  weather: Mapping[str, Vintage] | None = None) -> list[dict]:
        from gridcast.wire import ForecastQuery

        state = _Prefetched(histories, weather)
        core = ForecastCore(settings=self.settings, catalog=self.runner.catalog, runner=self.runner, state=state,
                            clock=self.clock)
        results: list[dict | None] = [None] * len(jobs)
        plans: list[tuple[int, Plan]] = []
        for i, job in enumerate(jobs):
            try:
                if job.query:
                    query = ForecastQuery.model_validate(job.query).to_query()
                else:
                    query = Query(job.region, job.horizon, job.model, tuple(job.level))
                (plan,) = core.plan([query])
                plans.append((i, plan))
            except ModelNotFoundError as exc:
                reason = f"no model is served for region {job.region!r}" if exc.field == "region" else exc.detail
                results[i] = self.naive.one(job, histories.get(job.region), reason=reason)
            except GridcastError as exc:
                results[i] = error_result(job, exc)
        answers = self.runner.run([p for _, p in plans]) if plans else []
        for (i, plan), answer in zip(plans, answers, strict=True):
            if isinstance(answer, GridcastError):
                results[i] = error_result(jobs[i], answer)
            else:
                results[i] = orjson.loads(core.respond(plan, answer))
        return results  # type: ignore[return-value]

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
        return None

    async def forecast(self, jobs: Sequence[Job], histories: Mapping[str, Series | None],
                       weather: Mapping[str, Vintage] | None = None) -> list[dict]:
        # the service reads the same state (vintages included) itself
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
