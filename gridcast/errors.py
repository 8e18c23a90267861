"""The domain exception hierarchy.

Adapters translate these: the CLI prints one line and exits 2 for
:class:`UserInputError`; the service answers 4xx with ``{error, detail, field}``;
the bridge dead-letters the message with the reason. Nothing else reaches a user.
"""

from __future__ import annotations


class GridcastError(Exception):
    """Base of every error gridcast raises on purpose."""

    #: short machine-readable code, used as ``error`` in HTTP bodies
    code = "gridcast_error"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class UserInputError(GridcastError):
    """Bad input from a person: a missing file or column, a bad unit, a bad timestamp."""

    code = "invalid_input"


class SchemaError(UserInputError):
    """A table does not follow the canonical schema."""

    code = "schema_error"


class DataUnusableError(GridcastError):
    """The data cannot be used to forecast (too short, too much missing)."""

    code = "data_unusable"


class InsufficientDataError(GridcastError):
    """Too little history for a model; the caller falls back to seasonal naive."""

    code = "insufficient_data"


class ModelNotFoundError(UserInputError):
    """No served model for this region and alias."""

    code = "model_not_found"


class IncompatibleModelError(GridcastError):
    """A stored model was saved in a layout this version cannot read; retrain it."""

    code = "incompatible_model"
