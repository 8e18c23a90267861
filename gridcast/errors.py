"""The domain exception hierarchy.

Adapters translate these: the CLI prints one line and exits 2 for
:class:`UserInputError`; the service answers ``http_status`` with
``{error, detail, field}`` (and ``Retry-After`` when ``retryable``); the bridge
dead-letters the message with the reason. Nothing else reaches a user.
"""

from __future__ import annotations


class GridcastError(Exception):
    """Base of every error gridcast raises on purpose."""

    #: short machine-readable code, used as ``error`` in HTTP bodies
    code = "gridcast_error"
    #: the HTTP status an API answers with
    http_status = 500
    #: whether the same call may succeed later (503 + Retry-After, the bridge retries)
    retryable = False

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class UserInputError(GridcastError):
    """Bad input from a person: a missing file or column, a bad unit, a bad timestamp."""

    code = "invalid_input"
    http_status = 422


class SchemaError(UserInputError):
    """A table does not follow the canonical schema."""

    code = "schema_error"


class DataUnusableError(GridcastError):
    """The data cannot be used to forecast (too short, too much missing)."""

    code = "data_unusable"
    http_status = 422


class InsufficientDataError(GridcastError):
    """Too little history for a model; the caller falls back to seasonal naive."""

    code = "insufficient_data"
    http_status = 422


class ModelNotFoundError(UserInputError):
    """No served model for this region and alias."""

    code = "model_not_found"
    http_status = 404


class IncompatibleModelError(GridcastError):
    """A stored model was saved in a layout this version cannot read; retrain it."""

    code = "incompatible_model"


class UnavailableError(GridcastError):
    """A backing part (the model batcher, the state store) cannot answer now; retry shortly."""

    code = "unavailable"
    http_status = 503
    retryable = True


class OverloadedError(UnavailableError):
    """More model calls are queued than the service can answer within its latency budget."""

    code = "model_unavailable"

