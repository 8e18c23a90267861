"""The gridcast Bento service: forecasts over HTTP, batched, cached, never fitting.

Two BentoML services, one Bento:

* :class:`GridcastModels` holds the served forecasters (referenced at class scope from
  the model store, loaded in ``__init__``) behind ONE batchable API,
  ``predict_batch(calls: list[ModelCall])``. Under ``bentoml serve`` it runs in its own
  process, so BentoML's adaptive batching merges the model calls of concurrent HTTP
  requests into one list; results go back by ``id`` (batch order is not kept).
* :class:`Gridcast` is the public API (``/forecast``, ``/forecast_batch``, ``/recent``,
  ``GET /models``, BentoML's ``/livez`` ``/readyz`` ``/metrics``). It runs the core
  (:mod:`service.core`: validate → history → cache) and sends the cache misses to
  ``GridcastModels`` through ``bentoml.depends``. In a test client (``to_asgi()``) the
  dependency is an in-process instance and the same code runs without HTTP.

Errors: the core raises :class:`~gridcast.errors.GridcastError` subclasses; they become
4xx JSON ``{error, detail, field}``. :class:`GuardMiddleware` refuses wrong content
types (415, pickles included), oversized bodies (413) and missing API keys (401), and
rewrites BentoML's own request-validation answers into the same shape. Anything
unexpected is logged and answered with a generic 500 — no stack trace leaves.

Run it with ``gridcast serve`` (or ``bentoml serve service.service:Gridcast``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

import bentoml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import JSONResponse

from service import metrics
from service.core import ForecastCore, LocalModels, ModelCatalog, ServedModel
from service.schemas import (
    BatchQuery,
    BatchResult,
    ErrorBody,
    ForecastQuery,
    ForecastResult,
    ModelAnswer,
    ModelCall,
    RecentQuery,
    RecentResult,
)
from gridcast.errors import GridcastError, ModelNotFoundError, UserInputError
from gridcast.settings import Settings, get_settings

logger = logging.getLogger("gridcast.service")

#: the service process's settings: decorator arguments (batching, port) need them at import
SETTINGS: Settings = get_settings()

#: GridcastError code → HTTP status
STATUS = {
    ModelNotFoundError.code: 404,
    "insufficient_data": 422,
    "data_unusable": 422,
    "state_unavailable": 503,
    "model_unavailable": 503,
}


def _served() -> list[Any]:
    """The store's served models (tag, alias, region, metadata); empty if none yet."""
    from gridcast.store import served_models

    return list(served_models())


def _model_refs() -> list[bentoml.models.BentoModel]:
    """Class-scope references to the served pointer and every served model.

    ``bentoml build`` packs exactly these into the Bento, so the container serves what
    the store served when it was built.
    """
    from gridcast.store import served_tags

    try:
        tags = served_tags()
    except Exception:  # a broken store must not break import: the service starts empty, /readyz says so
        logger.warning("model store unreadable at import; serving no models", exc_info=True)
        return []
    return [bentoml.models.BentoModel(tag) for tag in tags]


class ModelServiceUnavailable(GridcastError):
    """The model process did not answer (overloaded past ``max_latency_ms``, or restarting)."""

    code = "model_unavailable"


def error_response(exc: GridcastError) -> JSONResponse:
    status = STATUS.get(exc.code, 422 if isinstance(exc, UserInputError) else 500)
    if status == 503:
        detail = exc.detail if isinstance(exc, ModelServiceUnavailable) else "a backing store is unavailable; retry shortly"
        body = ErrorBody(error=exc.code, detail=detail)
        return JSONResponse(body.model_dump(), status_code=503, headers={"retry-after": "1"})
    if status >= 500:
        logger.error("internal error: %s", exc.detail)
        body = ErrorBody(error="internal_error", detail="the forecast could not be computed; see the server log")
    else:
        body = ErrorBody(error=exc.code, detail=exc.detail, field=exc.field)
    return JSONResponse(body.model_dump(), status_code=status)


def _warm_up(forecasters: dict[tuple[str, str], Any]) -> None:
    """One forecast per model before the first request.

    The first call of a model traces its TensorFlow graph (seconds); adaptive batching
    estimates latency from the calls it has seen, so a cold first batch would make it
    shed the requests behind it with 503s. Paying that cost at start-up (before
    ``/readyz``) keeps the estimate honest.
    """
    for (region, alias), forecaster in forecasters.items():
        try:
            forecaster.predict(24)
        except GridcastError as exc:  # e.g. a model without a stored context
            logger.info("warm-up of %s/%s skipped: %s", region, alias, exc.detail)


@bentoml.service(name="gridcast-models", workers=1, traffic={"timeout": 120})
class GridcastModels:
    """The served forecasters behind one batchable model call (the only TensorFlow process)."""

    refs = _model_refs()

    def __init__(self) -> None:
        from gridcast.store import load_forecaster

        self.settings = get_settings()
        catalog = ModelCatalog.from_store(_served())
        forecasters = {}
        for m in catalog:
            forecasters[(m.region, m.alias)] = load_forecaster(m.tag)
            logger.info("loaded %s (%s/%s)", m.tag, m.region, m.alias)
        self.local = LocalModels(catalog, forecasters)
        _warm_up(forecasters)

    @bentoml.api(
        batchable=SETTINGS.batching,
        max_batch_size=SETTINGS.max_batch_size,
        max_latency_ms=SETTINGS.max_latency_ms,
    )
    def predict_batch(self, calls: list[ModelCall]) -> list[ModelAnswer]:
        """Compute many model calls together; answers carry the call's ``id``."""
        for alias in {c.alias for c in calls}:
            metrics.observe_batch(alias, sum(c.alias == alias for c in calls))
        return self.local.predict(calls)


# BentoML only sees Model objects bound directly as class attributes; the served set is
# data-dependent, so the class-scope list is handed to the service's model list as well.
GridcastModels.models.extend(r for r in GridcastModels.inner.refs if r not in GridcastModels.models)


class GuardMiddleware:
    """Refuse what must never reach an API; make every error body ``{error, detail, field}``."""

    #: POST routes that take JSON bodies
    JSON_ROUTES = ("/forecast", "/forecast_batch", "/recent", "/admin/")

    def __init__(self, app: Any) -> None:
        self.app = app

    @property
    def settings(self) -> Settings:
        return get_settings()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        guarded = scope.get("method") == "POST" and any(
            path == r or (r.endswith("/") and path.startswith(r)) for r in self.JSON_ROUTES
        )
        if guarded:
            refusal = self._refuse(path, headers)
            if refusal is None:
                body, refusal = await self._read_body(receive)
            if refusal is None:
                scope, refusal = self._json_only(scope, headers, body)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, self._rewriting(send) if guarded else send)

    #: what ``curl -d`` and bare clients send; accepted only when the body is a JSON object
    LENIENT_MEDIA = ("", "application/x-www-form-urlencoded", "text/plain")

    def _json_only(self, scope: dict, headers: dict[str, str], body: bytes) -> tuple[dict, JSONResponse | None]:
        """JSON bodies only. ``curl -d '{...}'`` (form content type, JSON body) is read as JSON;
        anything else that is not ``application/json`` — pickles above all — gets 415."""
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "application/json":
            return scope, None
        if media in self.LENIENT_MEDIA and body.lstrip().startswith(b"{"):
            try:
                json.loads(body)
            except ValueError:
                pass
            else:
                rest = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-type"]
                return dict(scope, headers=[*rest, (b"content-type", b"application/json")]), None
        return scope, _err(415, "unsupported_media_type",
                           f"send JSON with content-type application/json, not {media or 'nothing'!r}",
                           "content-type")

    def _refuse(self, path: str, headers: dict[str, str]) -> JSONResponse | None:
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.settings.max_body_bytes):
            return _err(413, "payload_too_large",
                        f"body larger than {self.settings.max_body_bytes} bytes", "body")
        if path.startswith("/admin/") and self.settings.api_key:
            if headers.get("x-api-key") != self.settings.api_key:
                return _err(401, "unauthorized", "this endpoint needs a valid x-api-key header", "x-api-key")
        return None

    async def _read_body(self, receive: Any) -> tuple[bytes, JSONResponse | None]:
        """Read the whole body, bounded: a chunked upload has no content-length to trust."""
        limit = self.settings.max_body_bytes
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                return b"", _err(413, "payload_too_large", f"body larger than {limit} bytes", "body")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks), None

    def _rewriting(self, send: Any) -> Any:
        """Turn BentoML's validation 400 (pydantic errors) into ``{error, detail, field}``."""
        state: dict[str, Any] = {}

        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                state["start"] = message
                state["body"] = b""
                return
            if "start" in state and message["type"] == "http.response.body":
                state["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                body = _rewrite_validation(state.pop("body"))
                start = state.pop("start")
                headers = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-length",)]
                headers.append((b"content-length", str(len(body)).encode()))
                await send(dict(start, headers=headers))
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        return wrapped


def _replay(body: bytes, original: Any) -> Any:
    """A ``receive`` that hands the buffered body over once, then waits on the real one."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive


def _err(status: int, code: str, detail: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=code, detail=detail, field=field).model_dump(), status_code=status)


def _rewrite_validation(raw: bytes) -> bytes:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and {"error", "detail", "field"} <= data.keys():
        return raw
    errors = data.get("detail") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
        field = _dotted(loc)
        detail = f"{field}: {first.get('msg', 'invalid value')}" if field else str(first.get("msg"))
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        body = ErrorBody(error="invalid_request", detail=detail, field=field or None)
    else:
        body = ErrorBody(error="invalid_request", detail="the request body is not valid JSON for this endpoint")
    return json.dumps(body.model_dump()).encode()


def _dotted(loc: list[str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _serves_ui() -> bool:
    """Whether this process answers HTTP for the UI.

    BentoML imports this module in the ``bentoml serve``/``build`` CLI process and in
    every service's worker; only the API worker serves ``/ui``. Importing Gradio
    elsewhere costs seconds of cold start and memory for nothing.
    """
    argv = sys.argv
    if "--service-name" in argv[:-1]:  # a BentoML worker: which service does it run?
        return argv[argv.index("--service-name") + 1] == "gridcast"
    first = argv[0] if argv else ""
    is_bentoml_cli = first.endswith(("bentoml", "bentoml/__main__.py"))
    return not is_bentoml_cli


def _with_ui(cls: type) -> type:
    """Mount the Gradio UI (a thin client of this API, :mod:`ui.app`) at ``/ui``, unless switched off."""
    if not SETTINGS.ui_mount or not _serves_ui():
        return cls
    try:
        from ui.app import service_ui_app
    except ModuleNotFoundError as exc:  # a build without the ui package serves the API alone
        if not (exc.name or "").startswith("ui"):
            raise
        logger.warning("ui package not available; serving without /ui")
        return cls
    return bentoml.asgi_app(service_ui_app(SETTINGS), path="/ui")(cls)


admin = FastAPI(title="gridcast admin", openapi_url=None, docs_url=None, redoc_url=None)


@bentoml.service(
    name="gridcast",
    http={"port": SETTINGS.port, "host": SETTINGS.host,
          "cors": {"enabled": bool(SETTINGS.cors_origins), "access_control_allow_origins": list(SETTINGS.cors_origins)}},
    traffic={"timeout": 120},
    workers=1,
)
@bentoml.asgi_app(admin, path="/")
@_with_ui
class Gridcast:
    """The public API. Models answer in :class:`GridcastModels`; this process never fits."""

    models = bentoml.depends(GridcastModels)

    def __init__(self) -> None:
        from gridcast.cache import make_cache
        from gridcast.state import make_state_store

        self.settings = get_settings()
        self.catalog = ModelCatalog.from_store(_served())
        self.state = make_state_store(self.settings)
        self.metrics = metrics.PrometheusMetrics()
        self.cache = make_cache(self.settings, on_error=lambda op: self.metrics.count("cache_error"))
        _seed_state(self.state, self.catalog)
        self.core = ForecastCore(
            settings=self.settings, models=self.catalog, state=self.state, cache=self.cache,
            metrics=self.metrics,
        )
        logger.info("gridcast serving %d models for regions %s", len(self.catalog), self.catalog.regions())

    def __is_ready__(self) -> bool:
        return len(self.catalog) > 0

    async def _answer(self, queries: list[ForecastQuery]) -> list[dict]:
        plans = await asyncio.to_thread(self.core.plan, queries)
        calls = [p.call for p in plans if p.cached is None]
        answers = await self._call_models(calls) if calls else []
        answers = [a if isinstance(a, ModelAnswer) else ModelAnswer.model_validate(a) for a in answers]
        return await asyncio.to_thread(self.core.complete, plans, answers)

    async def _call_models(self, calls: list[ModelCall]) -> list[Any]:
        """The batchable model call, retried a bounded number of times.

        Adaptive batching refuses a call it expects to finish past ``max_latency_ms``
        ("overloaded"); a short burst can trip that while the queue drains in
        milliseconds. Two retries with a growing pause absorb such bursts; a model
        process that stays overloaded or is restarting still gets a 503 (never a 500).
        """
        delays = (0.05, 0.25)
        for attempt in range(len(delays) + 1):
            try:
                return await self.models.to_async.predict_batch(calls)
            except Exception as exc:
                self.metrics.count("model_retry" if attempt < len(delays) else "model_unavailable")
                logger.warning(
                    "model call failed (%s: %s), attempt %d", type(exc).__name__, str(exc)[:200], attempt + 1
                )
                if attempt == len(delays):
                    raise ModelServiceUnavailable(
                        "the model service is overloaded or restarting; retry shortly"
                    ) from None
                await asyncio.sleep(delays[attempt])
        raise AssertionError("unreachable")

    @bentoml.api(route="/forecast", input_spec=ForecastQuery)
    async def forecast(self, **fields: Any) -> ForecastResult:
        """One forecast: points with intervals for the next ``horizon`` steps."""
        try:
            (result,) = await self._answer([ForecastQuery.model_validate(fields)])
        except GridcastError as exc:
            return error_response(exc)
        return ForecastResult.model_validate(result)

    @bentoml.api(route="/forecast_batch", input_spec=BatchQuery)
    async def forecast_batch(self, requests: list[ForecastQuery]) -> BatchResult:
        """Several forecasts in one call (at most ``max_batch_requests``); answers keep the order."""
        try:
            results = await self._answer(list(requests))
        except GridcastError as exc:
            return error_response(exc)
        return BatchResult(results=[ForecastResult.model_validate(r) for r in results])

    @bentoml.api(route="/recent", input_spec=RecentQuery)
    async def recent(self, region: str, n: int = 168) -> RecentResult:
        """Recent actuals from the state store and the latest published forecast (for the UI)."""
        try:
            if region not in self.catalog.regions():
                raise ModelNotFoundError(f"unknown region {region!r}", field="region")
            return await asyncio.to_thread(self._recent, region, n)
        except GridcastError as exc:
            return error_response(exc)

    def _recent(self, region: str, n: int) -> RecentResult:
        from gridcast.cache import latest_forecast_key

        frame = self.state.history(region, n=n)
        observations = [
            {"timestamp": ts.isoformat(), **{k: (None if v != v else float(v)) for k, v in row.items()}}
            for ts, row in frame.iterrows()
        ] if frame is not None else []
        return RecentResult(region=region, observations=observations,
                            forecast=self.cache.get(latest_forecast_key(region)))

    # -- plain GET routes and admin, on the mounted FastAPI app ----------------------------
    @admin.get("/models")
    def list_models(self) -> dict:
        """Served versions per region and alias, with validation metrics and training ranges."""
        return {"models": [_describe(m) for m in self.catalog]}

    @admin.post("/admin/observations")
    def add_observations(self, body: dict) -> dict:
        """Append observations to the state store (the embedded stand-in for the bridge)."""
        import pandas as pd

        from service.core import history_frame

        query = ForecastQuery.model_validate({"region": body.get("region", ""), "horizon": 1,
                                              "history": body.get("observations")})
        served = self.catalog.resolve(query.region, "best")
        frame = history_frame(query, step=pd.Timedelta(served.freq), max_points=self.settings.max_history_points)
        added = self.state.add_observations(query.region, frame)
        return {"region": query.region, "added": int(added)}


def _describe(m: ServedModel) -> dict:
    meta = m.metadata
    return {
        "region": m.region,
        "alias": m.alias,
        "version": m.tag,
        "validation_mape": m.mape,
        "validation": meta.get("validation", {}),
        "training_range": {"start": meta.get("train_start"), "end": meta.get("train_end"),
                           "context_end": meta.get("context_end")},
        "freq": m.freq,
        "trained_at": meta.get("trained_at"),
        "quick": meta.get("quick"),
    }


def _seed_state(state: Any, catalog: ModelCatalog) -> None:
    """Embedded default: seed an empty in-process store with the training data's tail.

    The served seasonal naive keeps the last week of the training data (load only);
    that tail is what ``/recent`` shows before any new observation arrives. A Redis
    store is the bridge's to fill, so it is left alone.
    """
    from gridcast.state import InMemoryStateStore
    from gridcast.store import load_forecaster

    if not isinstance(state, InMemoryStateStore):
        return
    for region in catalog.regions():
        naive = catalog.get(region, "naive")
        if naive is None or state.last_timestamp(region) is not None:
            continue
        try:
            tail = load_forecaster(naive.tag).tail_
        except Exception:
            logger.warning("could not seed the state of %s from %s", region, naive.tag, exc_info=True)
            continue
        state.add_observations(region, tail.to_frame("load_mw"))


@admin.exception_handler(GridcastError)
async def _gridcast_error(_: Request, exc: GridcastError) -> JSONResponse:
    return error_response(exc)


@admin.exception_handler(RequestValidationError)
@admin.exception_handler(ValidationError)
async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if hasattr(exc, "errors") else []
    body = json.loads(_rewrite_validation(json.dumps({"detail": list(errors)}, default=str).encode()))
    return JSONResponse(body, status_code=400)


@admin.exception_handler(Exception)
async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error in an admin route")
    return _err(500, "internal_error", "unexpected error; see the server log")


Gridcast.add_asgi_middleware(GuardMiddleware)
