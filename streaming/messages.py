"""The bridge's messages: what an observation and a forecast request look like on Kafka.

Validation is strict and cheap (the bridge checks thousands of messages a second):
a message that fails becomes :class:`InvalidMessage` with a one-line reason, and the
bridge sends the original bytes to the dead-letter topic with that reason in a header.

Observation (topic ``settings.topic_observations``, key = region)::

    {"region": "north", "timestamp": "2024-01-01T05:00:00+00:00",
     "load_mw": 812.5, "temperature_c": 21.3, "humidity_pct": 70.0}

Forecast request (topic ``settings.topic_requests``)::

    {"request_id": "abc", "region": "north", "model": "best", "horizon": 24, "level": [80, 95]}

Example:
    >>> from gridcast.settings import Settings
    >>> raw = b'{"region": "north", "timestamp": "2024-01-01T05:00:00Z", "load_mw": 812.5}'
    >>> obs = parse_observation(raw, settings=Settings(), now_s=1.8e9)
    >>> obs.region, obs.epoch, obs.doc
    ('north', 1704085200, '{"load_mw":812.5}')
    >>> parse_observation(b'{"region": "north"}', settings=Settings(), now_s=1.8e9)
    Traceback (most recent call last):
    ...
    streaming.messages.InvalidMessage: missing field 'timestamp'
"""

from __future__ import annotations

import json
import math

import numpy as np
import orjson
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gridcast.schema import LOAD, bounds
from gridcast.settings import Settings

#: longest region name accepted (it becomes part of Redis keys)
MAX_REGION_LEN = 100


class InvalidMessage(ValueError):
    """A message the bridge cannot use; ``reason`` goes into the dead-letter header."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass(frozen=True, slots=True)
class Observation:
    """One validated observation, already in the state store's row format."""

    region: str
    epoch: int
    doc: str


def _load_json(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise InvalidMessage("empty message (no value)")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # strict JSON failed; the standard parser accepts NaN/Infinity literals, so such a
        # message is rejected below with the precise reason ("not finite") instead
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidMessage(f"not JSON: {type(exc).__name__}") from None
    if not isinstance(doc, dict):
        raise InvalidMessage(f"not a JSON object but {type(doc).__name__}")
    return doc


def _region(doc: dict[str, Any]) -> str:
    region = doc.get("region")
    if region is None:
        raise InvalidMessage("missing field 'region'", field="region")
    if not isinstance(region, str) or not region.strip() or len(region) > MAX_REGION_LEN:
        raise InvalidMessage(f"field 'region' must be a non-empty string of at most {MAX_REGION_LEN} characters",
                             field="region")
    return region


def _number(doc: dict[str, Any], name: str, lo: float, hi: float, *, required: bool) -> float | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise InvalidMessage(f"missing field {name!r}", field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage(f"field {name!r} must be a number, got {type(value).__name__}", field=name)
    value = float(value)
    if not math.isfinite(value):
        raise InvalidMessage(f"field {name!r} is not finite ({value})", field=name)
    if not lo <= value <= hi:
        raise InvalidMessage(f"field {name!r} = {value} is outside [{lo}, {hi}]", field=name)
    return value


def parse_observation(raw: bytes | None, *, settings: Settings, now_s: float) -> Observation:
    """Validate one observation message.

    Args:
        raw: the Kafka message value.
        settings: bounds, ``max_future_s`` and ``stream_step_s``.
        now_s: the current time (epoch seconds); a parameter so tests control it.

    Raises:
        InvalidMessage: not JSON, missing or mistyped fields, NaN or infinite values,
            out-of-range values, a timestamp without a UTC offset, off the stream's
            grid, or further in the future than ``settings.max_future_s``.
    """
    doc = _load_json(raw)
    region = _region(doc)
    ts = doc.get("timestamp")
    if ts is None:
        raise InvalidMessage("missing field 'timestamp'", field="timestamp")
    if not isinstance(ts, str):
        raise InvalidMessage(f"field 'timestamp' must be an ISO 8601 string, got {type(ts).__name__}",
                             field="timestamp")
    try:
        parsed = datetime.fromisoformat(ts)
    except ValueError:
        raise InvalidMessage(f"field 'timestamp' is not ISO 8601: {ts[:40]!r}", field="timestamp") from None
    if parsed.tzinfo is None:
        raise InvalidMessage("field 'timestamp' needs a UTC offset (e.g. +00:00 or Z)", field="timestamp")
    epoch_f = parsed.timestamp()
    if epoch_f > now_s + settings.max_future_s:
        raise InvalidMessage(
            f"field 'timestamp' {ts} is more than {settings.max_future_s} s in the future", field="timestamp"
        )
    epoch = int(epoch_f)
    if epoch != epoch_f or epoch % settings.stream_step_s:
        raise InvalidMessage(f"field 'timestamp' {ts} is not on the stream's {settings.stream_step_s} s grid",
                             field="timestamp")
    values: dict[str, float] = {}
    for name, (lo, hi) in bounds(settings).items():
        value = _number(doc, name, lo, hi, required=name == LOAD)
        if value is not None:
            values[name] = value
    return Observation(region=region, epoch=epoch, doc=orjson.dumps(values).decode())


def parse_request(raw: bytes | None, *, settings: Settings) -> tuple[str, dict[str, Any]]:
    """Validate a forecast request; ``(request_id, query fields)``.

    The query fields are checked again by the forecaster (:class:`gridcast.wire.ForecastQuery`);
    here only what the bridge itself needs: an id to answer to, a region, a horizon.

    Raises:
        InvalidMessage: not JSON, no ``request_id``, or a query the service schema rejects.
    """
    from pydantic import ValidationError

    from gridcast.wire import ForecastQuery

    doc = _load_json(raw)
    request_id = doc.pop("request_id", None)
    if not isinstance(request_id, str) or not request_id or len(request_id) > 200:
        raise InvalidMessage("field 'request_id' must be a non-empty string (at most 200 characters)",
                             field="request_id")
    try:
        query = ForecastQuery.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidMessage(f"invalid request: {field}: {first['msg']}", field=field) from None
    if query.horizon > settings.max_horizon:
        raise InvalidMessage(f"field 'horizon' must be 1..{settings.max_horizon}", field="horizon")
    return request_id, query.model_dump(mode="json", exclude_none=True)


def json_default(obj: Any) -> Any:
    """How a published forecast writes what orjson does not: numpy scalars as numbers, anything else as text."""
    return obj.item() if isinstance(obj, np.generic) else str(obj)
