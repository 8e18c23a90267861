"""Features, as pure functions shared by training, backtests and serving.

Two kinds, kept apart on purpose:

* **Known-future covariates** — calendar (hour, weekday, month, Fourier terms for
  the daily, weekly and annual cycles), day types (holidays national and regional,
  bridge days, the Christmas period, clock changes: :mod:`gridcast.calendar`), and
  weather terms. They are
  functions of the timestamp (or of a weather *forecast*), so they may be computed
  for any target time.
* **Origin features** — lags and rolling statistics of the load. They are computed
  from ``load[:origin]`` only: the series is cut at the origin before anything else
  happens, so a value after the origin cannot reach them (a test poisons those values
  and checks every feature at the origin is unchanged).

Example:
    >>> import pandas as pd
    >>> idx = pd.date_range("2024-02-09 17:00", periods=2, freq="h", tz="UTC")
    >>> cal = calendar_features(idx, country="VN", tz="Asia/Ho_Chi_Minh")
    >>> cal["holiday"].tolist()   # 00:00 and 01:00 local on 10 Feb 2024: Tết
    [1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from gridcast.calendar import DAY_TYPES, day_numbers, day_types, holiday_flags
from gridcast.schema import LOAD, TEMPERATURE, WEATHER_OPTIONAL

#: Fourier orders per cycle (period in days)
DEFAULT_FOURIER: dict[str, tuple[float, int]] = {
    "daily": (1.0, 3),
    "weekly": (7.0, 3),
    "annual": (365.25, 3),
}
#: heating / cooling degree bases (°C); loads in most grids turn up below / above these
HEATING_BASE_C = 16.0
COOLING_BASE_C = 22.0
#: the derived weather term of :func:`apparent_temperature`
APPARENT_TEMPERATURE = "apparent_temperature_c"
HUMIDITY, WIND = "humidity_pct", "wind_speed_ms"


__all__ = ["DAY_TYPES", "apparent_temperature", "calendar_features", "holiday_flags", "weather_features",
           "origin_features", "build_features"]


def calendar_features(
    index: pd.DatetimeIndex,
    *,
    country: str | None,
    tz: str | None = None,
    fourier: dict[str, tuple[float, int]] | None = None,
) -> pd.DataFrame:
    """Calendar and day-type covariates for each timestamp of ``index`` (UTC).

    Cycles follow local time (people get up by the local clock), so pass the region's
    ``tz``; without it UTC is used. Day types come from per-process day tables
    (:func:`gridcast.calendar.day_types`), looked up by array indexing.

    Args:
        index: UTC timestamps.
        country: region code for holidays: ``"ES"`` (national holidays, regional
            ones as a population share) or ``"ES-CT"`` (that subdivision's own); None:
            no holidays.
        tz: the region's time zone.
        fourier: Fourier orders per cycle (default :data:`DEFAULT_FOURIER`).

    Returns:
        Frame on ``index`` with ``hour``, ``weekday``, ``month``, ``is_weekend``, the
        day types ``holiday``, ``holiday_eve``, ``holiday_after``, ``holiday_share``,
        ``bridge``, ``christmas_period``, ``clock_change`` (:data:`DAY_TYPES`, described
        in :mod:`gridcast.calendar`) and ``sin_/cos_`` Fourier terms named
        ``{cycle}_{k}``.
    """
    index = pd.DatetimeIndex(index)
    local = index.tz_convert(tz) if tz else index.tz_convert("UTC")
    fourier = DEFAULT_FOURIER if fourier is None else fourier
    out: dict[str, np.ndarray] = {}
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    out["hour"] = hour
    out["weekday"] = local.day_of_week.to_numpy().astype(float)
    out["month"] = local.month.to_numpy().astype(float)
    out["is_weekend"] = (local.day_of_week >= 5).astype(float)
    days = day_numbers(local)
    out.update(day_types(days, country=country, tz=tz))
    # continuous time in days since the epoch, in local wall-clock terms
    t_days = days + hour / 24.0
    for name, (period, order) in fourier.items():
        for k in range(1, order + 1):
            angle = 2 * np.pi * k * t_days / period
            out[f"sin_{name}_{k}"] = np.sin(angle)
            out[f"cos_{name}_{k}"] = np.cos(angle)
    return pd.DataFrame(out, index=index)


def apparent_temperature(temp_c: np.ndarray, humidity_pct: np.ndarray, wind_ms: np.ndarray | None = None) -> np.ndarray:
    """Apparent temperature (°C), Steadman's formula as the Australian Bureau of Meteorology uses it.

    ``AT = T + 0.33·e − 0.70·ws − 4.00``, with ``e`` the water vapour pressure (hPa) from
    the relative humidity: ``e = rh/100 · 6.105 · exp(17.27·T / (237.7 + T))``. Humid
    heat feels hotter (air conditioning), wind colder. Without wind the still-air value.

    Example:
        >>> round(float(apparent_temperature(np.array([30.0]), np.array([60.0]), np.array([2.0]))[0]), 2)
        32.97
    """
    t = np.asarray(temp_c, dtype=float)
    e = np.asarray(humidity_pct, dtype=float) / 100.0 * 6.105 * np.exp(17.27 * t / (237.7 + t))
    wind = 0.0 if wind_ms is None else np.asarray(wind_ms, dtype=float)
    return t + 0.33 * e - 0.70 * wind - 4.00


def weather_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Weather terms: temperature, heating and cooling degrees, apparent temperature, other columns present.

    ``frame`` holds observed weather (history) or a weather forecast (future);
    missing columns are simply absent from the result. ``hdd`` / ``cdd`` are degrees
    below / above :data:`HEATING_BASE_C` / :data:`COOLING_BASE_C` per step (degree-hours
    on an hourly grid). ``apparent_temperature_c`` (:func:`apparent_temperature`) needs
    temperature and humidity; wind is used when present.
    """
    out = pd.DataFrame(index=frame.index)
    if TEMPERATURE in frame:
        t = frame[TEMPERATURE].astype(float)
        out[TEMPERATURE] = t
        out["hdd"] = np.maximum(0.0, HEATING_BASE_C - t)
        out["cdd"] = np.maximum(0.0, t - COOLING_BASE_C)
        if HUMIDITY in frame:
            wind = frame[WIND].to_numpy(float) if WIND in frame else None
            out[APPARENT_TEMPERATURE] = apparent_temperature(t.to_numpy(), frame[HUMIDITY].to_numpy(float), wind)
    for col in WEATHER_OPTIONAL:
        if col in frame:
            out[col] = frame[col].astype(float)
    return out


def origin_features(
    load: pd.Series,
    targets: pd.DatetimeIndex,
    *,
    origin: pd.Timestamp,
    lags: Sequence[str] = ("1D", "7D"),
    windows: Sequence[str] = ("1D", "7D"),
) -> pd.DataFrame:
    """Lag and rolling features for each target time, known at ``origin``.

    * ``lag_{L}``: the load at ``t - m·L`` with the smallest ``m >= 1`` that lands at
      or before the origin (so "same hour yesterday" for a 36-hour lead reaches back
      two days).
    * ``roll_mean_{W}`` / ``roll_std_{W}`` / ``roll_max_{W}``: over the window ``W``
      that ends at the origin (one value, repeated for each target).

    The series is cut at the origin first: nothing after it can leak in.
    """
    known = load[load.index <= origin].astype(float)
    targets = pd.DatetimeIndex(targets)
    out = pd.DataFrame(index=targets)
    if known.empty:
        return out.assign(**{f"lag_{lag}": np.nan for lag in lags})
    lookup = known.to_dict()
    for lag in lags:
        step = pd.Timedelta(lag)
        gap = (targets - origin) / step  # how many lags the target is beyond the origin
        m = np.maximum(1, np.ceil(np.asarray(gap, dtype=float))).astype(int)
        src = targets - pd.to_timedelta(m * step.value, unit="ns")
        out[f"lag_{lag}"] = [lookup.get(s, np.nan) for s in src]
    for w in windows:
        window = known[known.index > origin - pd.Timedelta(w)]
        out[f"roll_mean_{w}"] = float(window.mean())
        out[f"roll_std_{w}"] = float(window.std()) if len(window) > 1 else 0.0
        out[f"roll_max_{w}"] = float(window.max())
    return out


def build_features(
    history: pd.DataFrame,
    targets: pd.DatetimeIndex,
    *,
    origin: pd.Timestamp,
    country: str | None,
    tz: str | None = None,
    future_covariates: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """All features for ``targets`` as known at ``origin``.

    Args:
        history: one region's frame (UTC index) with ``load_mw`` and observed weather.
        targets: the timestamps to forecast (after ``origin``).
        origin: the forecast origin; only history up to it is used for load.
        country: holiday country code.
        tz: the region's time zone for calendar terms.
        future_covariates: weather for the targets (a forecast). Without it, weather
            terms are left out.
    """
    parts = [calendar_features(targets, country=country, tz=tz)]
    if future_covariates is not None:
        parts.append(weather_features(future_covariates.reindex(targets)))
    parts.append(origin_features(history[LOAD], targets, origin=origin))
    return pd.concat(parts, axis=1)
