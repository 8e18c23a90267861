"""A canonical table over HTTP: the body of ``POST /data/check`` and of ``GET /data/sample``.

A table travels as JSON, in one of two forms (exactly one per body):

* ``columns`` — ``{"timestamp": [...ISO 8601...], "region": [...], "load_mw": [...],
  "temperature_c": [...], ...}``, equal lengths, ``null`` = missing; with ``meta``
  (the table-level facts a Parquet file carries: ``timezone``, ``sources``, ...).
  ``GET /data/sample`` answers in this form, so its answer is a valid check body.
* ``csv`` — the text of a CSV file with the canonical columns (``curl`` friendly).

This module parses either form into the canonical frame (:func:`gridcast.schema.validate`),
naming the column and the row of the first problem, and turns frames and reports back
into JSON (:func:`columns_of`, :func:`dumps`). :func:`check_table` and
:func:`sample_table` are the two endpoints' answers, so the service only routes. The
size of a body is bounded before it gets here (the service's ``max_body_bytes``).

Example:
    >>> body = TableBody(columns={"timestamp": ["2024-01-01T00:00Z", "2024-01-01T01:00Z"],
    ...                           "region": ["r", "r"], "load_mw": [1.0, None], "temperature_c": [20.0, 21.0]})
    >>> df, meta = body.frame()
    >>> columns_of(df)["load_mw"], columns_of(df)["timestamp"][0]
    ([1.0, None], '2024-01-01T00:00:00+00:00')
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gridcast.errors import UserInputError
from gridcast.schema import REQUIRED, TIMESTAMP, validate

if TYPE_CHECKING:
    from gridcast.settings import Settings


class TableBody(BaseModel):
    """A canonical table in a JSON body: ``columns`` (+ ``meta``) or ``csv``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, list[Any]] | None = Field(
        None, description="Column name → values (equal lengths; timestamps ISO 8601 with offset; null = missing)."
    )
    csv: str | None = Field(None, description="The text of a CSV file with the canonical columns.")
    meta: dict[str, Any] = Field(
        default_factory=dict, description="Table-level facts, e.g. {'timezone': 'Europe/Madrid'} for calendar checks."
    )

    @model_validator(mode="after")
    def _one_form(self) -> TableBody:
        if (self.columns is None) == (self.csv is None):
            raise ValueError("send exactly one of 'columns' or 'csv'")
        return self

    def frame(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The canonical frame and its metadata.

        Raises:
            UserInputError: a missing column, unequal lengths, a bad timestamp or number.
        """
        if self.csv is not None:
            return frame_from_csv(self.csv), dict(self.meta)
        return frame_from_columns(self.columns or {}), dict(self.meta)


class CheckBody(TableBody):
    """``POST /data/check``: a table and how to check it."""

    repair_dates: bool = Field(False, description="Swap transposed day/month pairs back (gridcast data check --repair-dates).")
    include_clean: bool = Field(True, description="Answer the cleaned table too (the UI plots it).")


def frame_from_columns(columns: dict[str, list[Any]]) -> pd.DataFrame:
    """Column lists → the canonical frame (see the module example)."""
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise UserInputError(f"columns of unequal length: {lengths}", field="columns")
    _require(list(columns), "the table")
    frame = pd.DataFrame({name: values for name, values in columns.items()})
    return _typed(frame, "the table")


def frame_from_csv(text: str, *, name: str = "the CSV") -> pd.DataFrame:
    """CSV text with the canonical columns → the canonical frame."""
    try:
        frame = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise UserInputError(f"{name} is not readable CSV ({type(exc).__name__})", field="csv") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    _require(list(frame.columns), name)
    return _typed(frame, name)


def _require(names: list[str], name: str) -> None:
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise UserInputError(f"{name} has no column {missing[0]!r}; a canonical table needs {', '.join(REQUIRED)} "
                             f"(`gridcast data import` maps other layouts)", field=missing[0])


def _typed(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    if frame.empty:
        raise UserInputError(f"{name} has no rows", field="columns")
    raw = frame[TIMESTAMP].astype(str)
    stamps = pd.to_datetime(frame[TIMESTAMP], utc=True, errors="coerce", format="ISO8601")
    _first_bad(stamps.isna(), raw, name, TIMESTAMP, "is not a timestamp (ISO 8601 with offset, e.g. 2024-01-31T13:00Z)")
    frame = frame.assign(**{TIMESTAMP: stamps})
    for col in frame.columns:
        if col in (TIMESTAMP, "region"):
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        _first_bad(values.isna() & frame[col].notna(), frame[col].astype(str), name, col, "is not a number")
        frame[col] = values.astype("float64")
    return validate(frame)


def _first_bad(mask: pd.Series, values: pd.Series, name: str, column: str, problem: str) -> None:
    """Name the first bad row (row 1 = the first data row) and how many more there are."""
    if mask.any():
        pos = int(mask.to_numpy().argmax())
        more = int(mask.sum()) - 1
        raise UserInputError(f"{name}, row {pos + 1}, column {column!r}: {values.iloc[pos]!r} {problem}"
                             + (f"; {more} more such rows" if more else ""), field=column)


def columns_of(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """The canonical frame → column lists (UTC ISO 8601 timestamps, ``None`` for missing)."""
    out: dict[str, list[Any]] = {}
    for col in frame.columns:
        series = frame[col]
        if col == TIMESTAMP:
            out[col] = [t.isoformat() for t in pd.DatetimeIndex(series).tz_convert("UTC")]
        elif pd.api.types.is_numeric_dtype(series):
            values = series.to_numpy(dtype=float)
            out[col] = [None if v != v else v for v in values.tolist()]
        else:
            out[col] = series.astype(str).tolist()
    return out


def dumps(doc: Any) -> bytes:
    """JSON bytes for reports and metadata (numpy scalars, timestamps, NaN → null)."""
    return orjson.dumps(doc, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _default(obj: Any) -> Any:
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def check_table(body: CheckBody, *, settings: Settings) -> dict[str, Any]:
    """Run :func:`gridcast.quality.check` on a body; the JSON answer of ``POST /data/check``.

    Returns:
        ``{usable, reasons, rows_in, rows_clean, freq, report, meta, clean}`` — ``clean``
        (the cleaned table, :func:`columns_of` form) only when ``include_clean``.

    Raises:
        UserInputError: the table cannot be read or fails the schema.
    """
    from gridcast.quality.checks import check

    df, meta = body.frame()
    result = check(df, meta, settings=settings, repair_dates=body.repair_dates)
    answer: dict[str, Any] = {
        "usable": bool(result.usable),
        "reasons": list(result.reasons),
        "rows_in": int(len(df)),
        "rows_clean": int(len(result.clean)),
        "freq": result.report.get("freq"),
        "report": result.report,
        "meta": result.meta,
    }
    if body.include_clean:
        answer["clean"] = columns_of(result.clean)
    return answer


#: the largest demo table ``GET /data/sample`` makes (days, regions): about 3 MB of JSON
SAMPLE_MAX_DAYS, SAMPLE_MAX_REGIONS = 366, 4


def sample_table(*, days: int, regions: int, faults: bool, settings: Settings) -> dict[str, Any]:
    """Seeded synthetic demo data (clean, or with the known faults injected) as a check body.

    The table is marked synthetic in its ``meta``; with ``faults`` the meta records what
    was injected where (:func:`gridcast.quality.faults.inject_faults`).

    Raises:
        UserInputError: ``days`` or ``regions`` outside 14..366 / 1..4, or too few days to
            place the faults (about 55).
    """
    from gridcast.synthetic import generate

    if not 14 <= days <= SAMPLE_MAX_DAYS:
        raise UserInputError(f"days must be 14..{SAMPLE_MAX_DAYS}, got {days}", field="days")
    if not 1 <= regions <= SAMPLE_MAX_REGIONS:
        raise UserInputError(f"regions must be 1..{SAMPLE_MAX_REGIONS}, got {regions}", field="regions")
    df, meta = generate(days=days, regions=regions, seed=settings.seed, country=settings.country)
    if faults:
        from gridcast.quality.faults import inject_faults

        try:
            df, meta = inject_faults(df, meta, seed=settings.seed)
        except ValueError:  # each fault needs room of its own, away from the ends
            raise UserInputError(f"{days} days is too short to place every fault apart; "
                                 "ask for 60 days or more", field="days") from None
    return {"columns": columns_of(df), "meta": meta}
