"""Weather-forecast vintages: the future covariates a forecast uses when a request brings none.

A *vintage* is one issued weather forecast for one region: when it was issued and an
hourly (the stream's step) series of weather columns for the coming days. They
arrive on ``settings.topic_weather`` (key = region) as::

    {"region": "ES", "issued_at": "2024-03-01T06:00:00+00:00",
     "points": [{"timestamp": "2024-03-01T07:00:00+00:00", "temperature_c": 11.5}, ...]}

from ``gridcast collect watch`` (a real forecast) or ``gridcast stream replay --weather``
(a data set's observed weather, sent as if it had been forecast: an oracle vintage).
The bridge validates each one here (a bad one is dead-lettered like any message) and
keeps the LATEST vintage per region in the state store (``P:weather:{region}``; an
older vintage arriving late never replaces a newer one). The forecast path takes the
slice of that vintage covering a plan's horizon (:func:`covariates`) when the request
has no ``weather``, and every answer names the vintage it used (``weather_issued_at``).

Nothing here knows Kafka or Redis: parsing works on an already-decoded document and
storage goes through :func:`to_json` / :func:`from_json`, one format for every store.

Example:
    >>> doc = {"region": "north", "issued_at": "2024-01-01T00:00:00Z",
    ...        "points": [{"timestamp": "2024-01-01T01:00:00Z", "temperature_c": 5.0},
    ...                   {"timestamp": "2024-01-01T03:00:00Z", "temperature_c": 7.0}]}
    >>> v = parse_vintage(doc, step=3600, bounds={"temperature_c": (-60.0, 60.0)})
    >>> v.region, len(v.weather), v.weather.columns["temperature_c"].tolist()
    ('north', 3, [5.0, nan, 7.0])
    >>> c = covariates(v, origin=1704067200, horizon=2, step=3600)
    >>> c.start == 1704070800, c.columns["temperature_c"].tolist()
    (True, [5.0, nan])
    >>> from_json(to_json(v)).issued_at == v.issued_at
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from gridcast.schema import WEATHER
from gridcast.series import Series, iso

#: most points one vintage may carry (16 days hourly: Open-Meteo's longest forecast)
MAX_POINTS = 16 * 24 * 4


class InvalidVintage(ValueError):
    """A weather-forecast message that cannot be used; ``reason`` is one line, ``field`` where."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


@dataclass(frozen=True, eq=False)
class Vintage:
    """One issued weather forecast for a region: ``weather`` on the stream's grid (NaN = not forecast)."""

    region: str
    issued_at: int  # epoch seconds
    weather: Series

    @property
    def issued_iso(self) -> str:
        return iso(self.issued_at)


def _epoch(value: Any, field: str) -> int:
    if not isinstance(value, str):
        raise InvalidVintage(f"field {field!r} must be an ISO 8601 string", field=field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidVintage(f"field {field!r} is not ISO 8601: {value[:40]!r}", field=field) from None
    if parsed.tzinfo is None:
        raise InvalidVintage(f"field {field!r} needs a UTC offset (e.g. +00:00 or Z)", field=field)
    stamp = parsed.timestamp()
    if stamp != int(stamp):
        raise InvalidVintage(f"field {field!r} has fractions of a second", field=field)
    return int(stamp)


def parse_vintage(
    doc: Mapping[str, Any], *, step: int, bounds: Mapping[str, tuple[float, float]], max_points: int = MAX_POINTS
) -> Vintage:
    """Validate one weather-forecast document (already JSON-decoded).

    Args:
        doc: ``{region, issued_at, points: [{timestamp, temperature_c, ...}]}``.
        step: the grid every point's timestamp must lie on (the stream's step).
        bounds: physical ``(lo, hi)`` per weather column (:func:`gridcast.schema.bounds`).
        max_points: most points accepted.

    Returns:
        The vintage; points may leave gaps (NaN there) but not repeat or go backwards.

    Raises:
        InvalidVintage: a missing or mistyped field, no points, too many, a timestamp
            off the grid or not increasing, a point at or before ``issued_at`` minus
            one step, a non-finite or out-of-range value, or no weather value at all.
    """
    region = doc.get("region")
    if not isinstance(region, str) or not region.strip() or len(region) > 100:
        raise InvalidVintage("field 'region' must be a non-empty string of at most 100 characters", field="region")
    issued = _epoch(doc.get("issued_at"), "issued_at")
    points = doc.get("points")
    if not isinstance(points, list) or not points:
        raise InvalidVintage("field 'points' must be a non-empty list", field="points")
    if len(points) > max_points:
        raise InvalidVintage(f"field 'points' has {len(points)} points; at most {max_points}", field="points")
    epochs = np.empty(len(points), dtype=np.int64)
    values = {c: np.full(len(points), np.nan) for c in WEATHER}
    for i, point in enumerate(points):
        if not isinstance(point, dict):
            raise InvalidVintage(f"points[{i}] must be an object", field=f"points[{i}]")
        epoch = _epoch(point.get("timestamp"), f"points[{i}].timestamp")
        if epoch % step:
            raise InvalidVintage(f"points[{i}].timestamp is not on the {step} s grid", field=f"points[{i}].timestamp")
        if i and epoch <= epochs[i - 1]:
            raise InvalidVintage(f"points[{i}].timestamp is not after points[{i - 1}]", field=f"points[{i}].timestamp")
        epochs[i] = epoch
        for c in WEATHER:
            v = point.get(c)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise InvalidVintage(f"points[{i}].{c} must be a finite number", field=f"points[{i}].{c}")
            lo, hi = bounds.get(c, (-math.inf, math.inf))
            if not lo <= v <= hi:
                raise InvalidVintage(f"points[{i}].{c} = {v} is outside [{lo}, {hi}]", field=f"points[{i}].{c}")
            values[c][i] = float(v)
    if epochs[0] < issued - step:
        # a "forecast" of the past is an observation: it belongs on the observations topic
        raise InvalidVintage("points start before issued_at; a vintage forecasts the future",
                             field="points[0].timestamp")
    present = {c: v for c, v in values.items() if np.isfinite(v).any()}
    if not present:
        raise InvalidVintage("no point carries a weather value", field="points")
    pos = (epochs - epochs[0]) // step
    n = int(pos[-1]) + 1
    if n > max_points:
        raise InvalidVintage(f"points span {n} steps; at most {max_points}", field="points")
    columns = {}
    for c, v in present.items():
        grid = np.full(n, np.nan)
        grid[pos] = v
        columns[c] = grid
    return Vintage(region, issued, Series(int(epochs[0]), step, columns))


def covariates(vintage: Vintage | None, *, origin: int | None, horizon: int, step: int) -> Series | None:
    """The vintage's slice for the ``horizon`` steps after ``origin`` (None: nothing of it overlaps).

    The slice starts exactly one step after ``origin`` and is ``horizon`` long; steps the
    vintage does not cover are NaN (the models treat them as "no weather there").
    """
    if vintage is None or origin is None or vintage.weather.step != step:
        return None
    w = vintage.weather
    first = origin + step
    offset = (first - w.start) // step
    idx = offset + np.arange(horizon)
    inside = (idx >= 0) & (idx < len(w))
    if not inside.any():
        return None
    columns = {}
    for c, v in w.columns.items():
        out = np.full(horizon, np.nan)
        out[inside] = v[idx[inside]]
        columns[c] = out
    if not any(np.isfinite(v).any() for v in columns.values()):
        return None
    return Series(int(first), step, columns)


def to_json(vintage: Vintage) -> str:
    """The storage format (one for Redis and the embedded store); NaN as null."""
    w = vintage.weather
    return orjson.dumps({
        "region": vintage.region, "issued_at": vintage.issued_at, "start": w.start, "step": w.step,
        "columns": {c: [None if not math.isfinite(x) else x for x in v.tolist()] for c, v in w.columns.items()},
    }).decode()


def from_json(raw: str | bytes) -> Vintage:
    doc = orjson.loads(raw)
    columns = {c: np.array([np.nan if x is None else x for x in v], dtype=float) for c, v in doc["columns"].items()}
    return Vintage(doc["region"], int(doc["issued_at"]), Series(int(doc["start"]), int(doc["step"]), columns))


def message(region: str, issued_at: int, weather: Series) -> dict:
    """A vintage as the topic's document (what ``collect watch`` and replays publish)."""
    points = []
    for epoch, i in zip(weather.epochs().tolist(), range(len(weather)), strict=True):
        point = {"timestamp": iso(int(epoch))}
        for c, v in weather.columns.items():
            if c in WEATHER and math.isfinite(v[i]):
                point[c] = float(v[i])
        if len(point) > 1:
            points.append(point)
    return {"region": region, "issued_at": iso(issued_at), "points": points}
