"""The service's error answers: every domain error as JSON ``{error, detail, field}``.

A :class:`~gridcast.errors.GridcastError` carries its HTTP status (and ``Retry-After``
when retryable); anything unexpected is logged with its trace and answered as a plain
500, so no stack trace leaves the service.
"""

from __future__ import annotations

import logging

import orjson
from starlette.responses import Response

from gridcast.errors import GridcastError
from gridcast.wire import ErrorBody

logger = logging.getLogger("service.service")


def _error_bytes(exc: GridcastError) -> bytes:
    if exc.http_status >= 500 and not exc.retryable:
        logger.error("internal error: %s", exc.detail)
        body = ErrorBody(error="internal_error", detail="the forecast could not be computed; see the server log")
    else:
        body = ErrorBody(error=exc.code, detail=exc.detail, field=exc.field)
    return orjson.dumps(body.model_dump())


def _response(reply: tuple[int, bytes, list[tuple[bytes, bytes]]]) -> Response:
    status, body, headers = reply
    return Response(body, status_code=status, media_type="application/json",
                    headers={k.decode(): v.decode() for k, v in headers} or None)


def error_response(exc: GridcastError) -> Response:
    """The JSON error body for a domain error, with the status the error carries."""
    headers = {"retry-after": "1"} if exc.retryable else None
    return Response(_error_bytes(exc), status_code=exc.http_status, media_type="application/json",
                    headers=headers)


def _domain(exc: Exception) -> GridcastError:
    """A domain error as it is; anything else logged with its trace and answered as a plain 500."""
    if isinstance(exc, GridcastError):
        return exc
    logger.error("unexpected error answering a forecast", exc_info=exc)
    return GridcastError("unexpected error")
