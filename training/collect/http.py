"""One HTTP client for every data source: timeouts, retries, a rate limit, clear errors.

Public APIs throttle (429) and fail transiently (5xx, timeouts); a backfill of years
makes hundreds of calls, so each call is retried with exponential backoff and full
jitter (honouring ``Retry-After`` when the server sends it) and calls are spaced by a
rate limit. A rejected token (401/403) is the user's to fix, so it fails at once with
an :class:`~training.collect.AuthError` naming the variable to set. Secrets never
appear in messages or logs: query parameters that carry them are redacted.

Example:
    >>> redact("https://x/api?securityToken=abc&documentType=A65")
    'https://x/api?securityToken=***&documentType=A65'
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx

from training.collect import AuthError, SourceError
from gridcast.settings import Settings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_SECRET_PARAMS = re.compile(r"(securityToken|api_key|apikey|token)=[^&\s]*", re.IGNORECASE)

Params = Sequence[tuple[str, str]] | dict[str, str]


def redact(text: str) -> str:
    """Hide token/key query parameters in a URL or message."""
    return _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}=***", text)


class RedactingFilter(logging.Filter):
    """Redacts secrets from log records; httpx logs every request URL at INFO, token included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_REDACTOR = RedactingFilter()


def _guard_httpx_logs() -> None:
    """Install the redacting filter on httpx's logger once (not at import: no work at import)."""
    logger = logging.getLogger("httpx")
    if _REDACTOR not in logger.filters:
        logger.addFilter(_REDACTOR)


@dataclass
class RetryPolicy:
    """How often and how long to wait before trying a request again.

    Attributes:
        max_retries: retries after the first attempt (0 = never retry).
        backoff_s: base delay; attempt ``n`` waits a uniform draw in ``[0, backoff_s * 2**n]``.
        backoff_max_s: cap on any single wait, ``Retry-After`` included.
    """

    max_retries: int = 4
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.collect_max_retries, settings.collect_backoff_s, settings.collect_backoff_max_s)

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.backoff_max_s)
        return min(rng.uniform(0.0, self.backoff_s * 2**attempt), self.backoff_max_s)


@dataclass
class HttpClient:
    """A rate-limited, retrying GET client for one source.

    Args:
        source: the source's human name, used in messages ("ENTSO-E").
        credential_hint: what to set when the source says 401/403 (e.g. ``ENTSOE_API_TOKEN``).
        timeout_s: per-request timeout.
        rate_per_s: at most this many requests per second.
        retry: the retry policy.
        transport: an httpx transport (tests pass none: respx patches httpx itself).
        sleep: the sleep function; tests inject a recorder so retries take no time.
        rng: randomness for jitter, seeded in tests.
    """

    source: str
    credential_hint: str | None = None
    timeout_s: float = 30.0
    rate_per_s: float = 2.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    requests_made: int = field(default=0, init=False)
    _last_request: float | None = field(default=None, init=False, repr=False)
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, source: str, **kwargs) -> HttpClient:
        """A client with the settings' timeout, rate limit and retry policy."""
        kwargs.setdefault("timeout_s", settings.collect_timeout_s)
        kwargs.setdefault("rate_per_s", settings.collect_rate_per_s)
        kwargs.setdefault("retry", RetryPolicy.from_settings(settings))
        return cls(source=source, **kwargs)

    def get(self, url: str, params: Params, *, accept: Iterable[int] = (200,)) -> httpx.Response:
        """GET with rate limit and retries; return the response if its status is in ``accept``.

        Raises:
            AuthError: 401 or 403.
            SourceError: a non-retryable status, or still failing after the last retry.
        """
        accept = frozenset(accept)
        attempt = 0
        while True:
            self._throttle()
            problem: str
            retry_after: float | None = None
            try:
                response = self._http().get(url, params=params)
            except httpx.TimeoutException:
                problem = f"timed out after {self.timeout_s:g} s"
            except httpx.TransportError as exc:
                problem = f"network error ({type(exc).__name__})"
            else:
                status = response.status_code
                if status in accept:
                    return response
                if status in (401, 403):
                    hint = f"; check {self.credential_hint}" if self.credential_hint else ""
                    raise AuthError(f"{self.source} rejected the credentials (HTTP {status}){hint}", field="token")
                if status not in RETRY_STATUSES:
                    raise SourceError(
                        f"{self.source} answered HTTP {status}: {_snippet(response.text)} "
                        f"({redact(str(response.request.url))})"
                    )
                problem = f"HTTP {status}"
                retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempt >= self.retry.max_retries:
                raise SourceError(f"{self.source} still failing after {attempt + 1} attempts: {problem}")
            wait = self.retry.delay(attempt, self.rng, retry_after)
            log.warning("%s: %s; retry %d/%d in %.2f s", self.source, problem, attempt + 1, self.retry.max_retries, wait)
            self.sleep(wait)
            attempt += 1

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _http(self) -> httpx.Client:
        if self._client is None:
            _guard_httpx_logs()
            self._client = httpx.Client(
                timeout=self.timeout_s, transport=self.transport, headers={"User-Agent": "gridcast-collect"}
            )
        return self._client

    def _throttle(self) -> None:
        """Space requests by ``1 / rate_per_s`` seconds."""
        now = self.clock()
        if self._last_request is not None:
            wait = self._last_request + 1.0 / self.rate_per_s - now
            if wait > 0:
                self.sleep(wait)
                now += wait
        self._last_request = now
        self.requests_made += 1


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _snippet(text: str, limit: int = 200) -> str:
    one_line = " ".join(text.split())
    return redact(one_line[:limit] + ("…" if len(one_line) > limit else ""))
