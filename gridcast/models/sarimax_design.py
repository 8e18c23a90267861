"""The single-stage SARIMAX's regression design and its β: the pure array functions of :mod:`gridcast.models.sarimax`.

* ``x_t`` (:func:`design_matrix`, from :func:`gridcast.features.calendar_features` and
  :func:`gridcast.features.weather_features`): weekday dummies (a public holiday
  counts as a Sunday — an 8-week window rarely holds the holiday itself, so its own
  flag is seldom identified), holiday / eve / day-after flags, the daily Fourier terms
  of local time (their daily difference is non-zero only at clock changes, so they
  carry the DST shift), the same Fourier terms on days off (weekends and holidays have
  another daily shape), and — when the model uses weather — temperature, heating and
  cooling degrees. Annual Fourier terms are left out: an 8-week window cannot identify
  them and the seasonal difference already removes slow level changes.
* **β**: fitting all ~25 coefficients by maximum likelihood takes minutes; instead β
  comes from least squares on the seasonally differenced series (``Δ_s y = Δ_s x·β +
  Δ_s u``, Δ_s u a stationary ARMA) — only for the columns whose difference is non-zero
  on at least a day of rows (:func:`differenced_beta`: a window that ends hours after a
  clock change used to give β ≈ ±1e11 and forecasts of ±3·10¹¹ MW) — and the daily
  Fourier β, unless a whole clock-change day identifies them, from the daily shape in
  levels (:func:`level_shape_beta`, so a forecast across a clock change moves the shape
  with the clock).
* :func:`time_of_day_scale`: the two-stage form's per-time-of-day interval scale (on
  :func:`time_of_day_slots`);
* :func:`held_out_scores`: the calibration's scores of forecasts from held-out origins;
* :func:`with_special_days`: the two-stage intervals on special days.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

from gridcast.features import calendar_features, weather_features
from gridcast.schema import TEMPERATURE

#: weather terms the model uses (from :func:`gridcast.features.weather_features`)
WEATHER_TERMS = (TEMPERATURE, "hdd", "cdd")
_DAILY_FOURIER = {"daily": (1.0, 3)}


def design_matrix(
    index: pd.DatetimeIndex,
    weather: pd.DataFrame | None,
    *,
    country: str | None,
    tz: str | None,
) -> pd.DataFrame:
    """The exogenous regressors ``x_t`` for each timestamp of ``index``.

    Args:
        index: UTC timestamps.
        weather: frame on ``index`` with ``temperature_c`` (observed or forecast), or
            None for a model without weather terms.
        country: holiday country code.
        tz: the region's time zone (calendar terms follow local time).

    Returns:
        A float frame on ``index``; column order is stable (the fitted β depends on it).
    """
    cal = calendar_features(index, country=country, tz=tz, fourier=_DAILY_FOURIER)
    out: dict[str, np.ndarray] = {}
    # a public holiday is a Sunday: with weeks-long windows most holidays never occur
    # in the fit window, so their own flag is rarely identified; the Sunday effect always is
    weekday = np.where(cal["holiday"].to_numpy() > 0, 6.0, cal["weekday"].to_numpy())
    for day in (0, 1, 3, 4, 5, 6):  # Wednesday is the base day
        out[f"dow_{day}"] = (weekday == day).astype(float)
    for name in ("holiday", "holiday_eve", "holiday_after"):
        out[name] = cal[name].to_numpy()
    off = np.maximum(cal["is_weekend"].to_numpy(), cal["holiday"].to_numpy())
    fourier = [c for c in cal.columns if c.startswith(("sin_daily", "cos_daily"))]
    for col in fourier:
        out[col] = cal[col].to_numpy()
        out[f"off_{col}"] = off * cal[col].to_numpy()
    if weather is not None:
        terms = weather_features(weather)
        for col in WEATHER_TERMS:
            out[col] = terms[col].to_numpy()
    return pd.DataFrame(out, index=index)


def clock_change_carriers(width: int) -> np.ndarray:
    """Mask of the plain daily Fourier columns of a ``width``-column design (the clock-change carriers)."""
    cols = design_matrix(pd.DatetimeIndex([], tz="UTC"), None, country=None, tz=None).columns
    mask = np.zeros(width, dtype=bool)
    mask[: len(cols)] = cols.str.startswith(("sin_daily", "cos_daily"))
    return mask


def differenced_beta(dx: np.ndarray, dy: np.ndarray, *, scale: np.ndarray,
                     min_support: int) -> tuple[np.ndarray, np.ndarray]:
    """β of ``Δ_s y = Δ_s x·β`` by least squares, only for the columns the window identifies.

    A column is identified when its seasonal difference is non-zero on at least
    ``min_support`` rows (one day of steps). The daily Fourier terms of local time
    differ from the day before only in the 24 hours after a clock change, the holiday
    flags only on and after the holiday: a window that ends (or starts) a few hours
    into such a day holds a handful of such rows. Fitted on them, the six Fourier β
    are a near-singular solve that came out at ±1e11 — harmless in the window, where
    they cancel, but multiplied by the non-zero ``Δx`` of the remaining hours of the
    clock-change day in the forecast, and carried forward by the seasonal difference
    into every later day: forecasts of ±3·10¹¹ MW for a week after a refit on the day
    of a clock change. An unidentified column keeps β = 0 here (the daily Fourier
    terms then take theirs from :func:`level_shape_beta`).

    The solve itself is on unit-norm columns with a relative singular-value cut-off,
    so exactly collinear columns (temperature and heating degrees while it is always
    colder than the heating base) share a finite minimum-norm β instead of ±1e6 each.

    Args:
        dx, dy: differenced design and target (rows with a finite ``dy`` only).
        scale: per column, the largest absolute value of the undifferenced ``x``
            (what counts as "non-zero" is relative to it).
        min_support: rows with a non-zero difference needed to identify a column.

    Returns:
        β (0 for unidentified columns) and the boolean mask of identified columns.
    """
    beta = np.zeros(dx.shape[1])
    nonzero = np.abs(dx) > 1e-6 * (1.0 + scale)
    usable = nonzero.sum(axis=0) >= min_support
    if usable.any():
        beta[usable] = _lstsq(dx[:, usable], dy)
    return beta, usable


def level_shape_beta(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """β of ``y = c + x·β`` in levels (rows with a finite ``y``): the local-time shape.

    Only used for the daily Fourier terms when the differenced regression cannot
    identify them (no full clock-change day in the window). In levels they are the
    average daily shape by local time, which is exactly what moves by an hour in UTC
    when the clocks change: ``(x_t − x_{t−s})·β`` then shifts the seasonal lag's
    shape onto the new local time, instead of carrying the old alignment for days.
    """
    ok = np.isfinite(y)
    a = np.column_stack([np.ones(int(ok.sum())), x[ok]])
    return _lstsq(a, y[ok])[1:]


def _lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares on unit-norm columns with a relative cut-off (finite on collinear columns)."""
    norm = np.sqrt((a**2).sum(axis=0))
    norm[norm == 0] = 1.0
    coef, *_ = np.linalg.lstsq(a / norm, b, rcond=1e-8)
    return coef / norm


def time_of_day_slots(index: pd.DatetimeIndex, tz: str | None, season: int) -> np.ndarray:
    """The local time-of-day step (0 .. ``season`` − 1) of each timestamp."""
    local = pd.DatetimeIndex(index).tz_convert(tz or "UTC")
    minutes = local.hour.to_numpy() * 60 + local.minute.to_numpy()
    return np.minimum(minutes * season // 1440, season - 1)


def time_of_day_scale(scores: np.ndarray, slots: np.ndarray, season: int) -> np.ndarray:
    """Per time-of-day step, the root mean square of ``scores`` there relative to all (clipped to ¼–4).

    Stage 1's errors are larger in the day than at night (Spain 2017: 90 % intervals of
    one width covered 95 % of night hours and 79 % of day hours). ``slots`` gives each
    score's time-of-day step; steps with under 10 scores keep 1.

    Example:
        >>> time_of_day_scale(np.array([[1.0] * 10 + [3.0] * 10]), np.array([[0] * 10 + [1] * 10]), 2).round(3)
        array([0.447, 1.342])
    """
    finite = np.isfinite(scores)
    sq = np.where(finite, scores**2, 0.0)
    count = np.bincount(slots.ravel(), weights=finite.ravel().astype(float), minlength=season)
    mean_sq = np.bincount(slots.ravel(), weights=sq.ravel(), minlength=season)
    overall = sq.sum() / max(count.sum(), 1.0)
    scale = np.ones(season)
    enough = count >= 10
    scale[enough] = np.sqrt(mean_sq[enough] / count[enough] / overall)
    return np.clip(scale, 0.25, 4.0)


def held_out_scores(results, y: np.ndarray, origins: np.ndarray, horizon: int, sigma: np.ndarray,
                    shift: np.ndarray | None = None) -> np.ndarray:
    """``|y − ŷ| / σ_j`` of the forecasts from every origin, leads × origins (NaN past ``y``).

    ``ŷ`` at lead ``j`` from origin ``o`` is ``Z·Tʲ·a_o + x_{o+j}·β`` from the filter's
    predicted state ``a_o`` in ``results`` (what ``get_forecast`` gives from that
    origin, without re-filtering), plus ``shift[j, o]`` when given (how a weather
    forecast's error moves the forecast); ``sigma`` the model's standard error per lead.
    """
    ssm = results.model.ssm  # time-invariant: 2-D, or 3-D with a last axis of 1
    z, t = np.atleast_3d(ssm["design"])[:, :, 0], np.atleast_3d(ssm["transition"])[:, :, 0]
    intercept = np.asarray(ssm["obs_intercept"])[0]
    state = results.predicted_state[:, origins]
    scores = np.full((horizon, len(origins)), np.nan)
    for j in range(horizon):
        target = origins + j
        ok = target < len(y)
        pred = (z @ state)[0, ok] + intercept[target[ok]]
        if shift is not None:
            pred = pred + shift[j, ok]
        with np.errstate(invalid="ignore"):
            scores[j, ok] = np.abs(y[target[ok]] - pred) / sigma[j]
        state = t @ state
    return scores


def with_special_days(half: np.ndarray, level: int, extra_sd: np.ndarray) -> np.ndarray:
    """The half-widths of a ``level`` % interval with a normal error of spread ``extra_sd`` (per step) added.

    Two-stage: the calibration's held-out days are mostly ordinary ones, so on special
    days (holidays, eves, bridges, Christmas) stage 1's extra spread
    (:attr:`~gridcast.models.calendar_regression.CalendarRegression.special_sd_`) is
    added in quadrature; ``extra_sd`` 0 leaves a step's half-width as it is.
    """
    extra = NormalDist().inv_cdf(0.5 + level / 200) * np.asarray(extra_sd, dtype=float)
    return np.where(extra > 0, np.sqrt(half**2 + extra**2), half)
