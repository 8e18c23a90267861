"""Weather from Open-Meteo (no key): hourly history and forecast, in UTC.

The archive API (reanalysis) serves history with a few days' lag; the forecast API
serves the recent past and the next days. Both answer the same JSON shape::

    {"latitude": 40.4, "longitude": -3.7, "utc_offset_seconds": 0, "timezone": "GMT",
     "hourly_units": {"time": "iso8601", "temperature_2m": "°C", ...},
     "hourly": {"time": ["2024-01-01T00:00", ...], "temperature_2m": [5.1, ...], ...}}

and ``{"error": true, "reason": "..."}`` with HTTP 400 for a bad request. We always ask
for ``timezone=UTC`` and ``wind_speed_unit=ms`` so that no conversion is guessed, and
check that the answer says so. A region's weather is the (weighted) mean over a few
points — the big cities where the load is.

Example:
    >>> parse_points("40.42,-3.70;41.39,2.17,0.5")
    [Point(lat=40.42, lon=-3.7, weight=1.0, name=''), Point(lat=41.39, lon=2.17, weight=0.5, name='')]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.collect import SourceError
from training.collect.http import HttpClient
from gridcast.errors import UserInputError
from gridcast.settings import Settings

log = logging.getLogger(__name__)

#: Open-Meteo hourly variable -> canonical column
VARIABLES = {
    "temperature_2m": "temperature_c",
    "relative_humidity_2m": "humidity_pct",
    "wind_speed_10m": "wind_speed_ms",
    "cloud_cover": "cloud_cover_pct",
    "shortwave_radiation": "shortwave_wm2",
    "pressure_msl": "pressure_hpa",
}
#: units we ask for and insist on (a silently different unit would poison the model)
EXPECTED_UNITS = {
    "temperature_2m": "°C",
    "relative_humidity_2m": "%",
    "wind_speed_10m": "m/s",
    "cloud_cover": "%",
    "shortwave_radiation": "W/m²",
    "pressure_msl": "hPa",
}


@dataclass(frozen=True)
class Point:
    """A weather point; ``weight`` is its share in the region's mean (e.g. population)."""

    lat: float
    lon: float
    weight: float = 1.0
    name: str = ""


def _p(name: str, lat: float, lon: float, weight: float) -> Point:
    return Point(lat, lon, weight, name)


#: built-in places per zone: the largest load centres, weighted roughly by population (millions)
PLACES: dict[str, tuple[Point, ...]] = {
    "ES": (_p("Madrid", 40.42, -3.70, 6.7), _p("Barcelona", 41.39, 2.17, 5.6), _p("Valencia", 39.47, -0.38, 2.5),
           _p("Seville", 37.39, -5.98, 1.9), _p("Bilbao", 43.26, -2.93, 1.0)),
    "DE_LU": (_p("Berlin", 52.52, 13.40, 3.7), _p("Hamburg", 53.55, 9.99, 1.9), _p("Munich", 48.14, 11.58, 1.5),
              _p("Cologne", 50.94, 6.96, 1.1), _p("Frankfurt", 50.11, 8.68, 0.8)),
    "FR": (_p("Paris", 48.86, 2.35, 11.0), _p("Lyon", 45.76, 4.84, 2.3), _p("Marseille", 43.30, 5.37, 1.9),
           _p("Lille", 50.63, 3.06, 1.2), _p("Toulouse", 43.60, 1.44, 1.0)),
    "NL": (_p("Amsterdam", 52.37, 4.90, 2.5), _p("Rotterdam", 51.92, 4.48, 1.8), _p("Eindhoven", 51.44, 5.47, 0.8)),
    "PJM": (_p("Philadelphia", 39.95, -75.17, 6.2), _p("Washington", 38.91, -77.04, 6.3),
            _p("Chicago", 41.88, -87.63, 9.5), _p("Pittsburgh", 40.44, -80.00, 2.4), _p("Columbus", 39.96, -83.00, 2.1)),
    "CISO": (_p("Los Angeles", 34.05, -118.24, 13.0), _p("San Francisco", 37.77, -122.42, 4.7),
             _p("San Diego", 32.72, -117.16, 3.3), _p("Sacramento", 38.58, -121.49, 2.4), _p("Fresno", 36.74, -119.79, 1.0)),
    "ERCO": (_p("Houston", 29.76, -95.37, 7.1), _p("Dallas", 32.78, -96.80, 7.6), _p("San Antonio", 29.42, -98.49, 2.6),
             _p("Austin", 30.27, -97.74, 2.4)),
    "NYIS": (_p("New York", 40.71, -74.01, 19.0), _p("Albany", 42.65, -73.75, 0.9), _p("Buffalo", 42.89, -78.88, 1.1)),
}


def parse_points(text: str) -> list[Point]:
    """Points from ``"lat,lon[,weight];lat,lon[,weight]"``.

    Raises:
        UserInputError: a malformed or out-of-range coordinate.
    """
    points: list[Point] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        fields = [f.strip() for f in part.split(",")]
        try:
            if len(fields) not in (2, 3):
                raise ValueError
            lat, lon = float(fields[0]), float(fields[1])
            weight = float(fields[2]) if len(fields) == 3 else 1.0
        except ValueError:
            raise UserInputError(f"bad point {part!r}: expected 'lat,lon' or 'lat,lon,weight'", field="points") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180) or weight <= 0:
            raise UserInputError(f"point {part!r} is out of range (lat -90..90, lon -180..180, weight > 0)", field="points")
        points.append(Point(lat, lon, weight))
    if not points:
        raise UserInputError("no weather points given", field="points")
    return points


def points_for(zone: str, points: str | None = None) -> list[Point]:
    """The explicit ``points`` if given, else the built-in places of ``zone``.

    Raises:
        UserInputError: no points given and no built-in places for the zone.
    """
    if points:
        return parse_points(points)
    try:
        return list(PLACES[zone])
    except KeyError:
        raise UserInputError(
            f"no built-in weather places for {zone!r} (known: {', '.join(sorted(PLACES))}); pass --points 'lat,lon;...'",
            field="points",
        ) from None


def parse_response(payload: Any) -> pd.DataFrame:
    """One point's hourly answer as canonical weather columns on a UTC index.

    Raises:
        SourceError: not the documented shape, not UTC, or an unexpected unit.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("hourly"), dict):
        raise SourceError("Open-Meteo answer has no 'hourly' block")
    if payload.get("utc_offset_seconds", 0) != 0:
        raise SourceError(f"Open-Meteo answered in UTC{payload['utc_offset_seconds']:+d}s; expected UTC")
    hourly = payload["hourly"]
    units = payload.get("hourly_units", {})
    try:
        index = pd.DatetimeIndex(pd.to_datetime(hourly["time"], format="%Y-%m-%dT%H:%M")).tz_localize("UTC")
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceError(f"Open-Meteo 'hourly.time' is unreadable ({exc})") from None
    columns: dict[str, np.ndarray] = {}
    for variable, column in VARIABLES.items():
        if variable not in hourly:
            continue
        unit = units.get(variable)
        if unit is not None and unit != EXPECTED_UNITS[variable]:
            raise SourceError(f"Open-Meteo sent {variable} in {unit!r}; expected {EXPECTED_UNITS[variable]!r}")
        values = pd.to_numeric(pd.Series(hourly[variable], dtype="object"), errors="coerce").to_numpy("float64")
        if len(values) != len(index):
            raise SourceError(f"Open-Meteo {variable} has {len(values)} values for {len(index)} timestamps")
        columns[column] = values
    if "temperature_c" not in columns:
        raise SourceError("Open-Meteo answer has no temperature_2m")
    frame = pd.DataFrame(columns, index=index)
    frame.index.name = "timestamp"
    return frame


def aggregate(frames: list[pd.DataFrame], weights: list[float]) -> pd.DataFrame:
    """Weighted mean over points, per timestamp and column, ignoring missing values.

    Example:
        >>> idx = pd.date_range("2024-01-01", periods=2, freq="1h", tz="UTC")
        >>> a = pd.DataFrame({"temperature_c": [10.0, np.nan]}, index=idx)
        >>> b = pd.DataFrame({"temperature_c": [20.0, 4.0]}, index=idx)
        >>> aggregate([a, b], [3.0, 1.0])["temperature_c"].tolist()
        [12.5, 4.0]
    """
    columns = sorted(set().union(*(f.columns for f in frames)), key=list(VARIABLES.values()).index)
    index = frames[0].index
    for frame in frames[1:]:
        index = index.union(frame.index)
    out = {}
    for column in columns:
        values = np.vstack([f.reindex(index)[column].to_numpy("float64") if column in f else
                            np.full(len(index), np.nan) for f in frames])
        w = np.asarray(weights, dtype="float64")[:, None] * ~np.isnan(values)
        total = w.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[column] = np.where(total > 0, np.nansum(values * w, axis=0) / np.where(total > 0, total, 1), np.nan)
    result = pd.DataFrame(out, index=index)
    result.index.name = "timestamp"
    return result


class OpenMeteo:
    """Fetches hourly weather for a set of points and averages them.

    Args:
        client: the shared HTTP client.
        settings: URLs and the archive lag.
        today: "now" for splitting archive/forecast (tests pin it).
    """

    def __init__(self, client: HttpClient, *, settings: Settings, today: pd.Timestamp | None = None) -> None:
        self.client = client
        self.settings = settings
        self.today = (today or pd.Timestamp.now(tz="UTC")).normalize()

    def history(self, points: list[Point], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Hourly weather for ``[start, end)`` (UTC).

        Days older than the archive lag come from the archive API; more recent ones
        from the forecast API (which also serves the recent past), so a range that
        reaches today is complete.
        """
        split = self.today - pd.Timedelta(days=self.settings.openmeteo_archive_lag_days)
        parts = []
        if start < split:
            parts.append(self._fetch(self.settings.openmeteo_archive_url, points, start, min(end, split)))
        if end > split:
            parts.append(self._fetch(self.settings.openmeteo_forecast_url, points, max(start, split), end))
        frame = pd.concat(parts).sort_index()
        frame = frame[~frame.index.duplicated(keep="last")]
        return frame[(frame.index >= start) & (frame.index < end)]

    def forecast(self, points: list[Point], days: int) -> pd.DataFrame:
        """Hourly weather forecast from today 00:00 UTC for ``days`` days (1..16)."""
        if not 1 <= days <= 16:
            raise UserInputError(f"forecast days must be 1..16 (got {days})", field="days")
        params = [("forecast_days", str(days))]
        return self._aggregate_points(self.settings.openmeteo_forecast_url, points, params)

    def _fetch(self, url: str, points: list[Point], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        last_day = (end - pd.Timedelta(hours=1)).strftime("%Y-%m-%d")
        params = [("start_date", start.strftime("%Y-%m-%d")), ("end_date", last_day)]
        return self._aggregate_points(url, points, params)

    def _aggregate_points(self, url: str, points: list[Point], extra: list[tuple[str, str]]) -> pd.DataFrame:
        frames = []
        for point in points:
            params = [
                ("latitude", f"{point.lat:g}"),
                ("longitude", f"{point.lon:g}"),
                ("hourly", ",".join(VARIABLES)),
                ("timezone", "UTC"),
                ("wind_speed_unit", "ms"),
                *extra,
            ]
            response = self.client.get(url, params, accept=(200, 400))
            payload = _json(response)
            if response.status_code == 400:
                reason = payload.get("reason", "bad request") if isinstance(payload, dict) else "bad request"
                raise UserInputError(f"Open-Meteo refused the request: {reason}", field="weather")
            frames.append(parse_response(payload))
        return aggregate(frames, [p.weight for p in points])


def _json(response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise SourceError(f"Open-Meteo answered something that is not JSON ({response.text[:80]!r})") from None
