"""Real data collectors: weather (Open-Meteo), grid load (ENTSO-E, U.S. EIA).

Each source module turns one API's documented format into pandas objects on a UTC
index; :mod:`training.collect.store` remembers what was fetched so that only the
missing ranges are requested again; :mod:`training.collect.pipeline` merges load and
weather into the canonical table (:mod:`gridcast.schema`) that ``gridcast data
check`` validates next. All network goes through :class:`~training.collect.http.HttpClient`
(timeouts, retries with backoff and jitter, a rate limit, clear auth errors).
"""

from __future__ import annotations

from gridcast.errors import GridcastError, UserInputError


class SourceError(GridcastError):
    """A data source failed or answered something we cannot read (not the user's fault)."""

    code = "source_error"


class AuthError(UserInputError):
    """The source rejected the token or key (HTTP 401/403): the user must fix it."""

    code = "auth_error"


class EmptyRangeError(UserInputError):
    """The source has no data for the requested range (too recent, too old, or no such series)."""

    code = "empty_range"
