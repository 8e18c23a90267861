"""Day types: holidays (national and regional), bridge days, Christmas, clock changes.

Every model reads its calendar through :func:`gridcast.features.calendar_features`,
which takes these columns from :func:`day_types`:

* ``holiday`` — 1.0 on a public holiday of the region (for a whole country, its
  national holidays; for a subdivision such as ``"ES-CT"``, that subdivision's own).
* ``holiday_eve`` / ``holiday_after`` — ``holiday`` of the next / previous day.
* ``holiday_share`` — how much of the region is off, in [0, 1]: 1 on a national
  holiday, else the population share of the subdivisions that observe the day
  (:data:`POPULATION_SHARES`; equal shares for a country not in that table). Holy
  Thursday in Spain (not observed in Catalonia, Valencia or Cantabria) gets about
  0.72. A region configured with a subdivision gets its own holidays (0 or 1).
* ``bridge`` — a working day between two days off (a holiday and a weekend day, or
  two holidays): the product of the neighbours' "off" values (1 on a weekend, else
  ``holiday_share``) times the day's own working share. Friday after a national
  Thursday holiday: 1.
* ``christmas_period`` — 1.0 from 24 December to 6 January (local dates).
* ``clock_change`` — 1.0 on the local date whose UTC offset differs from the day
  before's (daylight saving begins or ends), in any hemisphere.

Region codes are the ones ``gridcast`` already takes as ``country``: an ISO 3166
country (``"ES"``) or a country and a subdivision, ISO 3166-2 style (``"ES-CT"``,
``"AU-VIC"``), with the subdivision codes of the ``holidays`` package.

Everything is computed per local *day*, once per process for a (region, time zone,
years) key, and looked up by array indexing: :func:`day_types` does no Python work per
timestamp (it sits on the service's request path through the models).

Example:
    >>> import numpy as np, pandas as pd
    >>> days = day_numbers(pd.DatetimeIndex(["2018-03-29", "2018-03-30", "2018-11-06"]))
    >>> [round(float(v), 2) for v in day_types(days, country="ES", tz="Europe/Madrid")["holiday_share"]]
    [0.72, 1.0, 0.0]
    >>> day_types(days, country="AU-VIC", tz="Australia/Melbourne")["holiday"].tolist()
    [0.0, 1.0, 1.0]
"""

from __future__ import annotations

import re
from functools import lru_cache

import holidays as holidays_lib
import numpy as np
import pandas as pd

#: the day-type columns of :func:`day_types`, in order
DAY_TYPES = ("holiday", "holiday_eve", "holiday_after", "holiday_share", "bridge", "christmas_period",
             "clock_change")

#: population of the first-level subdivisions (millions, rounded to 0.1 or 0.01), used to
#: weight regional holidays when a table covers the whole country. Sources:
#: ES — INE, Cifras de Población, 1 January 2018; AU — ABS 3101.0, Australian
#: Demographic Statistics, June 2018; DE — Destatis, Bevölkerungsstand 31 December 2018.
#: Any other country: every subdivision counts the same.
POPULATION_SHARES: dict[str, dict[str, float]] = {
    "ES": {"AN": 8.4, "AR": 1.3, "AS": 1.0, "CB": 0.6, "CE": 0.1, "CL": 2.4, "CM": 2.0, "CN": 2.1, "CT": 7.6,
           "EX": 1.1, "GA": 2.7, "IB": 1.1, "MC": 1.5, "MD": 6.6, "ML": 0.1, "NC": 0.6, "PV": 2.2, "RI": 0.3,
           "VC": 5.0},
    "AU": {"NSW": 7.99, "VIC": 6.46, "QLD": 5.01, "SA": 1.74, "WA": 2.60, "TAS": 0.53, "ACT": 0.42, "NT": 0.25},
    "DE": {"BW": 11.1, "BY": 13.1, "BE": 3.6, "BB": 2.5, "HB": 0.7, "HH": 1.8, "HE": 6.3, "MV": 1.6, "NI": 8.0,
           "NW": 17.9, "RP": 4.1, "SL": 1.0, "SN": 4.1, "ST": 2.2, "SH": 2.9, "TH": 2.1},
}
#: the Christmas to New Year period, (month, day) inclusive at both ends
CHRISTMAS = ((12, 24), (1, 6))
# first-level subdivision codes; the holidays package also lists cities and areas
# ("Barcelona", "NSW Western", "Augsburg") that are parts of one of them
_FIRST_LEVEL = re.compile(r"^[A-Z0-9]{1,3}$")
_EPOCH = pd.Timestamp("1970-01-01")


def split_region(country: str) -> tuple[str, str | None]:
    """``"ES"`` → ``("ES", None)``; ``"AU-VIC"`` → ``("AU", "VIC")``."""
    code, _, subdiv = country.strip().upper().partition("-")
    return code, (subdiv or None)


def day_numbers(local_dates: pd.DatetimeIndex) -> np.ndarray:
    """Days since 1970-01-01 of naive local dates (or local wall-clock times), as int64."""
    local_dates = pd.DatetimeIndex(local_dates)
    if local_dates.tz is not None:
        local_dates = local_dates.tz_localize(None)
    return np.floor_divide(local_dates.as_unit("ns").asi8, 86_400 * 10**9)


@lru_cache(maxsize=1024)
def _year_dates(code: str, subdiv: str | None, year: int) -> tuple[int, ...]:
    """Day numbers of one year's holidays of a country (or subdivision), once per process."""
    cal = holidays_lib.country_holidays(code, subdiv=subdiv, years=[year])
    return tuple((pd.Timestamp(d) - _EPOCH).days for d in cal)


def _flags(code: str, subdiv: str | None, years: list[int], first: int, n: int) -> np.ndarray:
    out = np.zeros(n)
    pos = np.array([d for y in years for d in _year_dates(code, subdiv, y)], dtype=np.int64) - first
    out[pos[(pos >= 0) & (pos < n)]] = 1.0
    return out


def _holidays(country: str, years: list[int], first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(holiday 0/1, holiday share) for the ``n`` days from day number ``first``."""
    code, subdiv = split_region(country)
    own = _flags(code, subdiv, years, first, n)
    if subdiv is not None:
        return own, own
    subdivisions = [s for s in holidays_lib.country_holidays(code).subdivisions if _FIRST_LEVEL.match(s)]
    weights = POPULATION_SHARES.get(code, {})
    share, total = np.zeros(n), 0.0
    for s in subdivisions:
        w = weights.get(s, 0.0 if weights else 1.0)
        if w:
            share += w * _flags(code, s, years, first, n)
            total += w
    share = share / total if total else share
    return own, np.maximum(own, share)


def _clock_changes(tz: str | None, first: int, n: int) -> np.ndarray:
    """1.0 on the local days whose UTC offset (at noon) differs from the day before's."""
    if not tz:
        return np.zeros(n)
    # local noon is never skipped or repeated by a clock change; day -1 gives the first diff
    noon = pd.DatetimeIndex((first - 1 + np.arange(n + 1)) * 86_400 * 10**9 + 12 * 3600 * 10**9)
    utc = noon.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").asi8
    offset = noon.asi8 - utc
    return (np.diff(offset) != 0).astype(float)


@lru_cache(maxsize=64)
def _table(country: str | None, tz: str | None, year_lo: int, year_hi: int) -> tuple[int, dict[str, np.ndarray]]:
    """Every day type for the local days of ``year_lo - 1`` .. ``year_hi + 1`` (one per process)."""
    years = list(range(year_lo - 1, year_hi + 2))
    first = (pd.Timestamp(years[0], 1, 1) - _EPOCH).days
    n = (pd.Timestamp(years[-1], 12, 31) - _EPOCH).days - first + 1
    days = first + np.arange(n)
    holiday, share = _holidays(country, years, first, n) if country else (np.zeros(n), np.zeros(n))
    weekend = (((days + 3) % 7) >= 5).astype(float)  # 1970-01-01 was a Thursday (3)
    off = np.maximum(weekend, share)
    bridge = np.zeros(n)
    bridge[1:-1] = (1.0 - weekend[1:-1]) * (1.0 - share[1:-1]) * off[:-2] * off[2:]
    local = pd.DatetimeIndex(days * 86_400 * 10**9)
    md = local.month * 100 + local.day
    (m0, d0), (m1, d1) = CHRISTMAS
    christmas = ((md >= m0 * 100 + d0) | (md <= m1 * 100 + d1)).astype(float)
    table = {
        "holiday": holiday,
        "holiday_eve": np.append(holiday[1:], 0.0),
        "holiday_after": np.insert(holiday[:-1], 0, 0.0),
        "holiday_share": share,
        "bridge": bridge,
        "christmas_period": np.asarray(christmas),
        "clock_change": _clock_changes(tz, first, n),
    }
    for v in table.values():
        v.setflags(write=False)
    return first, table


def day_types(days: np.ndarray, *, country: str | None, tz: str | None) -> dict[str, np.ndarray]:
    """The :data:`DAY_TYPES` columns for local day numbers (:func:`day_numbers`).

    Args:
        days: int days since 1970-01-01 of the *local* dates.
        country: region code (``"ES"``, ``"AU-VIC"``); None or empty: no holidays.
        tz: the region's time zone (for clock changes); None: UTC, no clock changes.

    Returns:
        One float array per column, aligned with ``days``.
    """
    days = np.asarray(days, dtype=np.int64)
    if not len(days):
        return {name: np.zeros(0) for name in DAY_TYPES}
    lo, hi = pd.DatetimeIndex(np.array([days.min(), days.max()]) * 86_400 * 10**9).year
    first, table = _table(country.upper() if country else None, tz or None, int(lo), int(hi))
    pos = days - first
    return {name: table[name][pos] for name in DAY_TYPES}


def holiday_flags(local_dates: pd.DatetimeIndex, country: str | None) -> np.ndarray:
    """1.0 where the local date is a public holiday of ``country`` (None: no holidays).

    ``country`` as in :func:`day_types`: a whole country's national holidays, or a
    subdivision's own (``"ES-CT"``).
    """
    if not country or not len(local_dates):
        return np.zeros(len(local_dates))
    return day_types(day_numbers(pd.DatetimeIndex(local_dates)), country=country, tz=None)["holiday"]
