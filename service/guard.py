"""The service's ASGI guard: what must never reach an API, and one error shape for all.

:class:`GuardMiddleware` refuses wrong content types (415, pickles included), oversized
bodies (413, chunked uploads too) and admin calls without the API key (401); it reads
``curl -d '{...}'`` bodies as JSON; it rewrites BentoML's own request-validation answers
into ``{error, detail, field}``; and it serves the completed OpenAPI document at
``/docs.json`` (:mod:`service.openapi`).

It also answers the forecast routes itself (``/forecast``, ``/forecast_batch``): past
saturation (the service's ``refusal``) with a 503 + ``Retry-After`` before the body is
read; otherwise, once the body is read and accepted, it hands the bytes to the service's ``fast`` handler
(validation straight from JSON, then the core) and sends its bytes back, and reports
each answer's route, status and latency to ``observe`` (the service's Prometheus
histogram). The service installs the guard as the outermost ASGI layer, around
BentoML's whole app, so a forecast skips BentoML's per-request machinery (its
middleware stack, routing, IO descriptors, the API wrapper), which cost more CPU than
the model; the routes stay declared as BentoML APIs, so the OpenAPI document and
clients see no difference. Until the service instance exists (startup), requests take
BentoML's path.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse

from gridcast.settings import Settings, get_settings
from gridcast.wire import ErrorBody


#: a forecast route's answer: (status, body bytes, extra headers)
FastAnswer = tuple[int, bytes, list[tuple[bytes, bytes]]]
#: answers a forecast route's accepted body
FastHandler = Callable[[str, bytes], Awaitable[FastAnswer]]


class GuardMiddleware:
    """Refuse what must never reach an API; make every error body ``{error, detail, field}``.

    Args:
        openapi: the completed OpenAPI document (served at ``/docs.json``).
        fast: the service's handler for :attr:`FAST_ROUTES`, or None while it has none.
        refusal: the service's 503 for a forecast request arriving now (overloaded), or None.
        cors_origins: origins allowed cross-origin (the fast answers carry the header).
        observe: told (route, status, seconds) of each forecast-route answer the guard gives.
    """

    #: POST routes that take JSON bodies
    JSON_ROUTES = ("/forecast", "/forecast_batch", "/recent", "/admin/", "/data/check")
    #: POST routes answered by the service's own handler, below BentoML's per-request stack
    FAST_ROUTES = ("/forecast", "/forecast_batch")

    def __init__(self, app: Any, *, openapi: Callable[[], dict],
                 fast: Callable[[], FastHandler | None] = lambda: None,
                 refusal: Callable[[], FastAnswer | None] = lambda: None,
                 cors_origins: tuple[str, ...] = (),
                 observe: Callable[[str, int, float], None] = lambda route, status, seconds: None) -> None:
        self.app = app
        self.observe = observe
        self.openapi = openapi
        self.fast = fast
        self.refusal = refusal
        # the fast answers get CORS headers from Starlette's middleware, as BentoML's routes do
        self._fast_app = CORSMiddleware(self._answer_fast, allow_origins=list(cors_origins)) if cors_origins \
            else self._answer_fast

    @property
    def settings(self) -> Settings:
        return get_settings()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path == "/docs.json" and scope.get("method") == "GET":
            await JSONResponse(self.openapi())(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        guarded = scope.get("method") == "POST" and any(
            path == r or (r.endswith("/") and path.startswith(r)) for r in self.JSON_ROUTES
        )
        if guarded:
            refusal = self._refuse(path, headers)
            if refusal is None and path in self.FAST_ROUTES:
                # past saturation: the 503 goes before the body is read or parsed
                refused = self.refusal()
                if refused is not None:
                    await self._fast(scope, receive, send, _answered(refused), b"")
                    return
            if refusal is None:
                body, refusal = await self._read_body(receive)
            if refusal is None:
                scope, refusal = self._json_only(scope, headers, body)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            handler = self.fast() if path in self.FAST_ROUTES else None
            if handler is not None:
                await self._fast(scope, receive, send, handler, body)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, self._rewriting(send) if guarded else send)

    async def _fast(self, scope: dict, receive: Any, send: Any, handler: FastHandler, body: bytes) -> None:
        """Answer a forecast route with ``handler`` (CORS around it) and observe the answer."""
        started = time.perf_counter()
        fast_scope = dict(scope, gridcast_fast=(handler, body))
        await self._fast_app(fast_scope, receive, send)
        self.observe(scope["path"], fast_scope.get("gridcast_status", 0), time.perf_counter() - started)

    @staticmethod
    async def _answer_fast(scope: dict, receive: Any, send: Any) -> None:
        """The service's handler on the body the guard read (an ASGI app, so CORS can wrap it)."""
        handler, body = scope["gridcast_fast"]
        status, answer, extra = await handler(scope["path"], body)
        scope["gridcast_status"] = status
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

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


def _answered(answer: FastAnswer) -> FastHandler:
    """A handler that gives ``answer`` whatever the body."""
    async def handler(path: str, body: bytes) -> FastAnswer:
        return answer

    return handler


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


def validation_body(errors: list[dict]) -> bytes:
    """pydantic's errors as the one error body (``{error, detail, field}``, 400)."""
    return _rewrite_validation(json.dumps({"detail": errors}, default=str).encode())


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
    """``['history', 'list[Observation]', '5', 'timestamp']`` → ``history[5].timestamp``.

    Parts naming a union member or a validator (``list[...]``, ``ColumnarHistory``) are
    pydantic's bookkeeping, not fields a client sent: they are left out.
    """
    out = ""
    for part in loc:
        if part.isdigit():
            out += f"[{part}]"
        elif re.fullmatch(r"[a-z_][a-z0-9_]*", part):
            out += f".{part}" if out else part
    return out
