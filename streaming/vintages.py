"""Weather-forecast vintages on Kafka: validating a message, publishing a data set's weather.

The format and the rules live in the core (:mod:`gridcast.weather`); here a message's
bytes become a :class:`~gridcast.weather.Vintage` or an
:class:`~streaming.messages.InvalidMessage` (the bridge dead-letters it like any
other), and a canonical table's weather becomes one vintage per region and issue time
(:func:`table_vintages`, what ``gridcast stream replay --weather`` sends).

Example:
    >>> from gridcast.settings import Settings
    >>> raw = (b'{"region": "north", "issued_at": "2024-01-01T00:00:00Z", "points": '
    ...        b'[{"timestamp": "2024-01-01T01:00:00Z", "temperature_c": 5.0}]}')
    >>> parse_weather(raw, settings=Settings(_env_file=None)).issued_iso
    '2024-01-01T00:00:00+00:00'
    >>> parse_weather(b'{"region": "north", "points": []}', settings=Settings(_env_file=None))
    Traceback (most recent call last):
    ...
    streaming.messages.InvalidMessage: field 'issued_at' must be an ISO 8601 string
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson
import pandas as pd

from gridcast.schema import REGION, TIMESTAMP, WEATHER, bounds
from gridcast.series import Series
from gridcast.settings import Settings
from gridcast.weather import InvalidVintage, Vintage, message, parse_vintage
from streaming.messages import InvalidMessage, _load_json


def parse_weather(raw: bytes | None, *, settings: Settings) -> Vintage:
    """Validate one weather-forecast message (:func:`gridcast.weather.parse_vintage` on the stream's grid).

    Raises:
        InvalidMessage: not a JSON object, or a vintage the core rejects (reason and field kept).
    """
    doc = _load_json(raw)
    try:
        return parse_vintage(doc, step=settings.stream_step_s, bounds=bounds(settings))
    except InvalidVintage as exc:
        raise InvalidMessage(exc.reason, field=exc.field) from None


def table_vintages(
    df: pd.DataFrame, *, every_s: int = 86400, lead_s: int = 7 * 86400, step_s: int = 3600
) -> Iterator[tuple[pd.Timestamp, bytes, bytes]]:
    """A table's observed weather as vintages: ``(issued_at, key, value)`` in time order.

    One vintage per region every ``every_s`` (on that grid), issued at that time and
    covering the following ``lead_s`` with the weather the table recorded: a replay
    has no archived forecasts, so this is the oracle (perfect-forecast) vintage. A real
    deployment publishes Open-Meteo's forecast instead (``gridcast collect watch``).
    """
    cols = [c for c in WEATHER if c in df.columns]
    if not cols or df.empty:
        return
    out: list[tuple[pd.Timestamp, bytes, bytes]] = []
    for region, rows in df.groupby(REGION, sort=True):
        series = Series.from_frame(rows.set_index(TIMESTAMP)[cols], step=step_s)
        end = series.end
        first = -(-series.start // every_s) * every_s
        for issued in range(first, end, every_s):
            lo = (issued + step_s - series.start) // step_s
            hi = min(len(series), lo + lead_s // step_s)
            if lo >= hi:
                continue
            part = Series(series.start + lo * step_s, step_s, {c: v[lo:hi] for c, v in series.columns.items()})
            if not any(np.isfinite(v).any() for v in part.columns.values()):
                continue
            doc = message(str(region), issued, part)
            out.append((pd.Timestamp(issued, unit="s", tz="UTC"), str(region).encode(), orjson.dumps(doc)))
    out.sort(key=lambda m: m[0])
    yield from out
