"""A seeded, realistic synthetic load + weather generator (the embedded default data).

The series has what real demand has: daily, weekly and annual cycles, a temperature
series with seasons and autocorrelated weather noise, a non-linear load response to
temperature (heating below ~16 °C, cooling above ~22 °C), public holidays of the
chosen country (Tết visibly depresses Vietnamese load), a trend and noise.
Same seed, same data — tests and `make run` rely on that.

Example:
    >>> df, meta = generate(days=14, regions=2, seed=1)
    >>> len(df), sorted(df["region"].unique()), meta["synthetic"]
    (672, ['region-1', 'region-2'], True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridcast.features import holiday_flags
from gridcast.schema import LOAD, REGION, TEMPERATURE, TIMESTAMP, validate

#: holidays whose name contains one of these depress load the most (Tết, Christmas)
MAJOR_HOLIDAY_WORDS = ("lunar new year", "christmas", "tết")

# Climate presets by country (annual mean °C, annual amplitude, daily amplitude,
# hemisphere sign). Unknown countries get a temperate climate.
CLIMATES: dict[str, tuple[float, float, float, float]] = {
    "VN": (27.0, 4.5, 4.0, 1.0),
    "ES": (16.0, 8.0, 5.0, 1.0),
    "AU": (16.0, 5.0, 5.0, -1.0),
    "US": (13.0, 11.0, 5.0, 1.0),
}
DEFAULT_CLIMATE = (11.0, 9.0, 4.5, 1.0)

TIMEZONES = {"VN": "Asia/Ho_Chi_Minh", "ES": "Europe/Madrid", "AU": "Australia/Melbourne",
             "US": "America/New_York", "DE": "Europe/Berlin", "GB": "Europe/London"}


def _holiday_weights(local_dates: pd.DatetimeIndex, country: str) -> np.ndarray:
    """0 on ordinary days, 1 on public holidays, 2 on major ones (Tết, Christmas)."""
    import holidays as holidays_lib

    years = sorted({int(y) for y in local_dates.year})
    cal = holidays_lib.country_holidays(country, years=years)
    flags = holiday_flags(local_dates, country)
    major = np.array(
        [any(w in str(cal.get(d, "")).lower() for w in MAJOR_HOLIDAY_WORDS) for d in local_dates.date]
    )
    return flags + major.astype(float)


def generate(
    *,
    days: int = 365,
    freq: str = "1h",
    regions: int = 1,
    country: str = "VN",
    seed: int = 42,
    start: str = "2023-01-01",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Generate a canonical table (clean; faults are injected by :mod:`gridcast.quality.faults`).

    Args:
        days: length in days.
        freq: step ('1h', '30min', ...).
        regions: number of regions (``region-1`` ...), each with its own level and noise.
        country: ISO code for holidays and climate.
        seed: random seed.
        start: first local date.

    Returns:
        The table and its metadata (``synthetic: True``, generator parameters).
    """
    country = country.upper()
    tz = TIMEZONES.get(country, "UTC")
    rng = np.random.default_rng(seed)
    idx = pd.date_range(pd.Timestamp(start, tz=tz).tz_convert("UTC"), periods=int(days * pd.Timedelta("1D") / pd.Timedelta(freq)),
                        freq=freq, name=TIMESTAMP)
    local = idx.tz_convert(tz)
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
    doy = local.day_of_year.to_numpy() + hour / 24.0
    weekday = local.day_of_week.to_numpy()
    dates = local.normalize().tz_localize(None)
    hol = _holiday_weights(dates, country)
    years = (idx - idx[0]).total_seconds().to_numpy() / (365.25 * 86400)

    mean_t, ann_amp, day_amp, hemi = CLIMATES.get(country, DEFAULT_CLIMATE)
    frames = []
    for r in range(regions):
        # weather: seasons + daily swing + AR(1) synoptic noise (days-long spells)
        n = len(idx)
        shocks = rng.normal(0, 1, n)
        phi = 0.995 if freq == "1h" else 0.9975
        ar = np.empty(n)
        ar[0] = shocks[0]
        for i in range(1, n):
            ar[i] = phi * ar[i - 1] + np.sqrt(1 - phi**2) * shocks[i]
        temp = (
            mean_t + r * 0.7
            - hemi * ann_amp * np.cos(2 * np.pi * (doy - 15) / 365.25)
            - day_amp * np.cos(2 * np.pi * (hour - 3) / 24)
            + 2.5 * ar
        )
        # load: base level, daily shape (morning + evening peaks), weekly, annual
        base = 1000.0 * (1 + r) * (1 + 0.25 * rng.random())
        daily = (
            0.78
            + 0.16 * np.exp(-((hour - 11) ** 2) / 10)
            + 0.22 * np.exp(-((hour - 19.5) ** 2) / 6)
            - 0.10 * np.exp(-((hour - 4) ** 2) / 8)
        )
        weekly = np.where(weekday == 6, 0.82, np.where(weekday == 5, 0.90, 1.0))
        # holidays: ordinary public holidays look like Sundays, major ones far lower
        holiday = np.where(hol >= 2, 0.62, np.where(hol >= 1, 0.84, 1.0))
        weather = 1 + 0.018 * np.maximum(0, 16 - temp) + 0.028 * np.maximum(0, temp - 22) ** 1.15
        trend = 1 + 0.03 * years
        noise = np.empty(n)
        eps = rng.normal(0, 0.012, n)
        noise[0] = eps[0]
        for i in range(1, n):
            noise[i] = 0.7 * noise[i - 1] + eps[i]
        load = base * daily * weekly * holiday * weather * trend * (1 + noise)
        frames.append(
            pd.DataFrame(
                {
                    TIMESTAMP: idx,
                    REGION: f"region-{r + 1}",
                    LOAD: load.round(2),
                    TEMPERATURE: temp.round(2),
                    "humidity_pct": np.clip(75 - 1.5 * (temp - mean_t) + rng.normal(0, 5, n), 5, 100).round(1),
                }
            )
        )
    df = validate(pd.concat(frames, ignore_index=True))
    meta = {
        "synthetic": True,
        "generator": {"days": days, "freq": freq, "regions": regions, "country": country,
                      "seed": seed, "start": start},
        "freq": freq,
        "timezone": tz,
        "country": country,
        "sources": {c: "synthetic" for c in df.columns if c not in (TIMESTAMP, REGION)},
    }
    return df, meta
