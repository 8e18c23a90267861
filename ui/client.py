"""A thin HTTP client of the gridcast service API — all the UI knows about forecasting.

The UI never imports model, feature or quality code: every number on screen comes
from the service (``POST /forecast``, ``POST /forecast_batch``, ``GET /models``,
``POST /recent``, ``GET /data/sample``, ``POST /data/check``), so the UI mounted at
``/ui`` and the stand-alone ``gridcast ui`` show exactly what any other client would get.

Failures are turned into two exceptions a person can act on:
:class:`ServiceUnavailable` (nothing answers at the URL, or it timed out) and
:class:`ServiceError` (the service answered ``{error, detail, field}``).

Example:
    >>> client = ServiceClient("http://127.0.0.1:3000/")
    >>> client.base_url
    'http://127.0.0.1:3000'
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from gridcast.errors import GridcastError

logger = logging.getLogger(__name__)


class ServiceUnavailable(GridcastError):
    """Nothing answered at the service URL (down, wrong URL, or too slow)."""

    code = "service_unavailable"


class ServiceError(GridcastError):
    """The service refused or failed a request; ``detail``/``field`` come from its body."""

    code = "service_error"

    def __init__(self, detail: str, *, field: str | None = None, status: int = 500, error: str = "service_error"):
        super().__init__(detail, field=field)
        self.status = status
        self.error = error


class ServiceClient:
    """Synchronous client (Gradio runs sync callbacks in worker threads).

    Args:
        base_url: where the service listens, e.g. ``http://127.0.0.1:3000``.
        timeout_s: per-request timeout; a forecast that takes longer counts as unavailable.
    """

    def __init__(self, base_url: str, *, timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def forecast(self, query: dict[str, Any]) -> dict[str, Any]:
        """``POST /forecast``: one :class:`~gridcast.wire.ForecastQuery` → one result."""
        return self._call("POST", "/forecast", query)

    def forecast_batch(self, queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``POST /forecast_batch``: several queries in one call; answers keep the order."""
        return self._call("POST", "/forecast_batch", {"requests": queries})["results"]

    def models(self) -> list[dict[str, Any]]:
        """``GET /models``: the served version per (region, alias) with its metrics."""
        return self._call("GET", "/models")["models"]

    def recent(self, region: str, n: int = 168) -> dict[str, Any]:
        """``POST /recent``: recent actuals from the state store + the latest published forecast."""
        return self._call("POST", "/recent", {"region": region, "n": n})

    def sample(self, *, days: int = 60, regions: int = 1, faults: bool = False) -> dict[str, Any]:
        """``GET /data/sample``: seeded demo data (optionally with the known faults) as a check body."""
        return self._call("GET", "/data/sample", params={"days": days, "regions": regions, "faults": str(faults).lower()})

    def check(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /data/check``: a table (``columns`` + ``meta``, or ``csv``) → the quality report and the cleaned table."""
        return self._call("POST", "/data/check", body)

    def ready(self) -> bool:
        """True when ``/readyz`` answers 200 (models loaded)."""
        try:
            return httpx.get(self.base_url + "/readyz", timeout=min(self.timeout_s, 5.0)).status_code == 200
        except httpx.HTTPError:
            return False

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
              params: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.base_url + path
        try:
            response = httpx.request(method, url, json=body, params=params, timeout=self.timeout_s)
        except httpx.TimeoutException:
            raise ServiceUnavailable(f"the service at {self.base_url} did not answer {path} "
                                     f"within {self.timeout_s:.0f} s") from None
        except httpx.HTTPError as exc:
            logger.warning("service call %s %s failed: %s", method, url, exc)
            raise ServiceUnavailable(f"cannot reach the service at {self.base_url} "
                                     f"({type(exc).__name__}); is it running?") from None
        if response.status_code >= 400:
            raise _error_from(response, path)
        try:
            return response.json()
        except ValueError:
            raise ServiceError(f"{path} answered something that is not JSON", status=response.status_code) from None


def _error_from(response: httpx.Response, path: str) -> ServiceError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if not isinstance(detail, str):
            detail = str(detail)
        return ServiceError(detail, field=body.get("field"), status=response.status_code,
                            error=str(body.get("error") or "service_error"))
    return ServiceError(f"{path} failed with HTTP {response.status_code}", status=response.status_code)
