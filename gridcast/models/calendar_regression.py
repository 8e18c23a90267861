"""Stage 1 of the two-stage SARIMAX: load as a regression on calendar and weather, fitted on years.

An 8-week window cannot identify a holiday (it holds one or none), the annual cycle,
or how load responds to temperatures it has not seen that season. A regression fitted
on one to three years can, and is cheap (one least-squares solve): the SARIMA errors
of :class:`gridcast.models.sarimax.SarimaxForecaster` then model only what it leaves
(level drift, the last days' deviations), on the recent window.

The terms (:func:`regression_terms`), all in local time:

* **the daily shape per day type** — one dummy per (day type, time-of-day step), day
  types Monday, Tuesday–Thursday, Friday, Saturday, Sunday. A holiday is a Sunday in
  proportion to how much of the region is off (``holiday_share``: 0.72 on Holy
  Thursday in Spain), its own weekday for the rest;
* **special days** — bridge days, the Christmas period, the eves and days after
  holidays, each a level and a daily shape (daily Fourier terms, order 2);
* **the annual cycle** — annual Fourier terms (order 3) and annual × daily ones (order
  2 × 2: daylight, hence lighting, moves the daily shape over the year);
* **temperature** (when the model uses weather) — the temperature and its mean over
  the trailing day (the thermal inertia of buildings; and a weather forecast's
  independent hourly errors largely cancel in it), heating and cooling degrees of both
  (hinges at several bases: the response is convex), and the degrees of the daily mean
  times the daily Fourier terms (heating matters in the morning and evening, cooling
  in the afternoon).

Example:
    >>> from gridcast.synthetic import generate
    >>> from gridcast.schema import region_frame
    >>> df, _ = generate(days=60, seed=3)
    >>> frame = region_frame(df, "region-1")
    >>> reg = CalendarRegression(country=None, tz=None, steps=24).fit(frame.index, frame["load_mw"].to_numpy(),
    ...                                                               frame["temperature_c"].to_numpy())
    >>> reg.predict(frame.index[-3:], frame["temperature_c"].to_numpy()[-3:]).shape
    (3,)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridcast.features import COOLING_BASE_C, HEATING_BASE_C, calendar_features

#: Monday, Tuesday–Thursday, Friday, Saturday, Sunday (weekday number -> day type)
DAY_TYPE = np.array([0, 1, 1, 1, 2, 3, 4])
N_DAY_TYPES = 5
#: hinge bases (°C) of the heating / cooling degrees of the daily mean temperature
HEATING_KNOTS_C = (HEATING_BASE_C, 12.0, 8.0)
COOLING_KNOTS_C = (20.0, COOLING_BASE_C + 2.0, 28.0)
_FOURIER = {"daily": (1.0, 2), "annual": (365.25, 3)}
#: temperature columns at the end of the design (:func:`temperature_terms`)
N_TEMPERATURE_TERMS = 10 + 2 * 4
#: the day types that make a day special (:func:`special_days`), and the share of the
#: region off that makes a regional holiday one
SPECIAL_DAY_TYPES = ("holiday", "holiday_eve", "holiday_after", "bridge", "christmas_period")
SPECIAL_HOLIDAY_SHARE = 0.5


def trailing_mean(temp: np.ndarray, before: np.ndarray | None, steps: int) -> np.ndarray:
    """Mean of the last ``steps`` values (this one included) of ``before`` followed by ``temp``.

    The first values average what there is (a window of fewer steps) when ``before``
    is shorter than ``steps - 1``.
    """
    prior = np.zeros(0)
    if before is not None and steps > 1:
        prior = np.asarray(before, dtype=float)[-(steps - 1):]
    full = np.concatenate([prior, np.asarray(temp, dtype=float)])
    csum = np.concatenate([[0.0], np.cumsum(full)])
    end = np.arange(len(prior), len(full)) + 1
    start = np.maximum(0, end - steps)
    return (csum[end] - csum[start]) / (end - start)


def regression_terms(
    index: pd.DatetimeIndex,
    temp: np.ndarray | None,
    temp_before: np.ndarray | None = None,
    *,
    country: str | None,
    tz: str | None,
    steps: int,
) -> np.ndarray:
    """The stage-1 design for each timestamp of ``index`` (see the module docstring).

    Args:
        index: UTC timestamps.
        temp: temperature (°C) on ``index``, or None for a model without weather.
        temp_before: the temperatures just before ``index[0]`` (for the trailing-day mean).
        country, tz: holiday region and time zone.
        steps: steps per day.

    Returns:
        A float matrix, one row per timestamp; its column order is fixed for given
        ``steps`` and weather use.
    """
    cal = calendar_features(index, country=country, tz=tz, fourier=_FOURIER)
    n = len(index)
    slot = np.minimum((cal["hour"].to_numpy() * steps / 24.0).astype(int), steps - 1)
    share = np.clip(cal["holiday_share"].to_numpy(), 0.0, 1.0)
    own = DAY_TYPE[cal["weekday"].to_numpy().astype(int)]
    weights = np.zeros((n, N_DAY_TYPES))
    weights[np.arange(n), own] = 1.0 - share
    weights[:, N_DAY_TYPES - 1] += share
    profile = np.zeros((n, N_DAY_TYPES * steps))
    rows = np.arange(n)
    for k in range(N_DAY_TYPES):
        profile[rows, k * steps + slot] = weights[:, k]
    daily = _daily(cal)
    shape = np.column_stack([np.ones(n), daily])
    parts = [profile]
    for name in ("bridge", "christmas_period", "holiday_eve", "holiday_after"):
        parts.append(cal[name].to_numpy()[:, None] * shape)
    annual = np.column_stack([cal[f"{f}_annual_{k}"].to_numpy() for k in (1, 2, 3) for f in ("sin", "cos")])
    parts.append(annual)
    parts.append((annual[:, :4, None] * daily[:, None, :]).reshape(n, -1))
    if temp is not None:
        t = np.asarray(temp, dtype=float)
        parts.append(temperature_terms(t, trailing_mean(t, temp_before, steps), daily))
    return np.column_stack(parts)


def temperature_terms(t: np.ndarray, tm: np.ndarray, daily: np.ndarray) -> np.ndarray:
    """The temperature columns of :func:`regression_terms` (its last :data:`N_TEMPERATURE_TERMS`).

    ``t`` the temperature, ``tm`` its trailing-day mean, ``daily`` the four daily
    Fourier terms (last axis); any leading shape (a matrix of leads × origins too).
    """
    heat = [np.maximum(0.0, knot - tm) for knot in HEATING_KNOTS_C]
    cool = [np.maximum(0.0, tm - knot) for knot in COOLING_KNOTS_C]
    level = np.stack([t, tm, np.maximum(0.0, HEATING_BASE_C - t), np.maximum(0.0, t - COOLING_BASE_C),
                      *heat, *cool], axis=-1)
    shape = np.stack([heat[0], cool[0]], axis=-1)[..., :, None] * daily[..., None, :]
    return np.concatenate([level, shape.reshape(*shape.shape[:-2], -1)], axis=-1)


def special_days(cal: pd.DataFrame) -> np.ndarray:
    """Whether each row of a :func:`calendar_features` frame lies on a special day.

    A holiday (or a regional one with at least half the region off), an eve, a day
    after, a bridge day or the Christmas period.
    """
    share = cal["holiday_share"].to_numpy() >= SPECIAL_HOLIDAY_SHARE
    return (cal[list(SPECIAL_DAY_TYPES)].to_numpy() > 0).any(axis=1) | share


def _daily(cal: pd.DataFrame) -> np.ndarray:
    """The daily Fourier terms (order 2) of a :func:`calendar_features` frame."""
    return np.column_stack([cal[f"{f}_daily_{k}"].to_numpy() for k in (1, 2) for f in ("sin", "cos")])


class CalendarRegression:
    """Least squares of load on :func:`regression_terms` (stage 1 of the two-stage SARIMAX).

    Args:
        country, tz: holiday region and time zone of the calendar terms.
        steps: steps per day.
        ridge: a small ridge penalty on unit-norm columns keeps the rarely-seen
            combinations (a Christmas period on a Saturday) finite; it shrinks towards
            the mean load (the day-type profiles sum to one on every row, so the mean
            is taken out first and added back).

    ``special_sd_`` (set by :meth:`fit`): the spread (MW) that special days
    (:func:`special_days`) add to the error. Their terms are fitted on a handful of
    days each, so in-sample residuals hide it: each day's residuals are taken
    leave-one-day-out (``(I − H_dd)⁻¹·e_d``, ``H_dd`` that day's block of the hat
    matrix), and ``special_sd_² = mean e² (special days) − mean e² (other days)``
    (0 when under a day of special steps, or when they do no worse).
    """

    def __init__(self, *, country: str | None, tz: str | None, steps: int, ridge: float = 1e-4) -> None:
        self.country, self.tz, self.steps, self.ridge = country, tz, int(steps), float(ridge)
        self.coef_: np.ndarray | None = None
        self.offset_ = 0.0
        self.uses_weather_ = False  # fitted with temperature terms (set by fit)
        self.special_sd_ = 0.0

    def terms(self, index: pd.DatetimeIndex, temp: np.ndarray | None,
              temp_before: np.ndarray | None = None) -> np.ndarray:
        return regression_terms(index, temp, temp_before, country=self.country, tz=self.tz, steps=self.steps)

    def fit(self, index: pd.DatetimeIndex, load: np.ndarray, temp: np.ndarray | None) -> CalendarRegression:
        """Fit on the rows of ``index`` with a finite ``load``."""
        x = self.terms(index, temp)
        y = np.asarray(load, dtype=float)
        ok = np.isfinite(y) & np.isfinite(x).all(axis=1)
        x, y = x[ok], y[ok]
        norm = np.sqrt((x**2).sum(axis=0))
        norm[norm == 0] = 1.0
        xs = x / norm
        gram = xs.T @ xs
        gram[np.diag_indices_from(gram)] += self.ridge
        self.offset_ = float(y.mean())
        self.uses_weather_ = temp is not None
        self.coef_ = np.linalg.solve(gram, xs.T @ (y - self.offset_)) / norm
        self.special_sd_ = self._special_sd(index[ok], xs, np.linalg.inv(gram), y - self.offset_ - x @ self.coef_)
        return self

    def _special_sd(self, index: pd.DatetimeIndex, xs: np.ndarray, inverse: np.ndarray, resid: np.ndarray) -> float:
        """``special_sd_`` from leave-one-day-out residuals (see the class docstring)."""
        local = pd.DatetimeIndex(index).tz_convert(self.tz or "UTC")
        special = special_days(calendar_features(index, country=self.country, tz=self.tz, fourier={}))
        if special.sum() < self.steps or (~special).sum() < self.steps:
            return 0.0
        codes = pd.factorize(local.normalize())[0]
        bounds = np.flatnonzero(np.diff(codes)) + 1
        loo = np.empty_like(resid)
        for rows in np.split(np.arange(len(resid)), bounds):
            block = xs[rows]
            hat = block @ inverse @ block.T
            loo[rows] = np.linalg.solve(np.eye(len(rows)) - hat, resid[rows])
        extra = np.mean(loo[special] ** 2) - np.mean(loo[~special] ** 2)
        return float(np.sqrt(max(extra, 0.0)))

    def special_days(self, index: pd.DatetimeIndex) -> np.ndarray:
        """:func:`special_days` of ``index`` in this regression's region."""
        return special_days(calendar_features(index, country=self.country, tz=self.tz, fourier={}))

    def predict(self, index: pd.DatetimeIndex, temp: np.ndarray | None,
                temp_before: np.ndarray | None = None) -> np.ndarray:
        return self.offset_ + self.terms(index, temp, temp_before) @ self.coef_

    def weather_error_shift(self, index: pd.DatetimeIndex, temp: np.ndarray, temp_before: np.ndarray | None,
                            origins: np.ndarray, error: np.ndarray) -> np.ndarray:
        """How far the prediction moves when the temperatures from each origin on are a forecast.

        A forecast issued at row ``origins[k]`` of ``index`` is told, for the target
        ``origins[k] + j``, the temperature ``temp + error[j, k]`` (``error``: leads ×
        origins, °C); the trailing-day mean at that target takes the errors of the
        steps from the origin to it (the steps before the origin were observed).

        Returns:
            leads × origins: the prediction with those temperatures minus the one
            with ``temp`` (NaN where the target is past ``index``; 0 for a fit without weather).
        """
        leads, width = error.shape
        target = np.asarray(origins)[None, :] + np.arange(leads)[:, None]
        valid = target < len(index)
        if not self.uses_weather_ or not valid.any():
            return np.where(valid, 0.0, np.nan)
        t = np.asarray(temp, dtype=float)
        tm = trailing_mean(t, temp_before, self.steps)
        daily = _daily(calendar_features(index, country=None, tz=self.tz, fourier={"daily": (1.0, 2)}))
        tgt = np.minimum(target, len(index) - 1)
        csum = np.concatenate([np.zeros((1, width)), np.cumsum(error, axis=0)])
        lead = np.arange(leads)
        tm_error = (csum[lead + 1] - csum[np.maximum(0, lead - self.steps + 1)]) / self.steps
        coef = self.coef_[-N_TEMPERATURE_TERMS:]
        base = temperature_terms(t[tgt], tm[tgt], daily[tgt]) @ coef
        moved = temperature_terms(t[tgt] + error, tm[tgt] + tm_error, daily[tgt]) @ coef
        return np.where(valid, moved - base, np.nan)
