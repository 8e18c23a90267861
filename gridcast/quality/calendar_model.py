"""The calendar model: what a day's load should look like given its date and weather.

Shared by the calendar checks of :mod:`gridcast.quality.checks` — the day/month
transposition (:mod:`gridcast.quality.transposition`), blocks of shifted or swapped
days (:mod:`gridcast.quality.date_shifts`) and the ``day_type`` check (here). Each asks
the same question: does this day's load fit its own label better than another one?
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gridcast.features import holiday_flags
from gridcast.schema import LOAD, TEMPERATURE

#: calendar checks: the alternative must cost less than this fraction of the labelled
#: one, and beat it by more than this many typical days' cost ("far better")
CALENDAR_RATIO = 0.5
CALENDAR_MARGIN = 3.0
#: as labelled, one day of a swapped pair must look unusual: cost above this quantile
#: of the costs of the days the model was fitted on
CALENDAR_UNUSUAL_QUANTILE = 0.9
#: residuals beyond this many robust SDs count no more (one odd hour cannot decide a day)
CALENDAR_CLIP_Z = 4.0
#: knots of the piecewise-linear temperature response, as quantiles of daily means
#: (the tails matter: heating and cooling start in the coldest and hottest tenth)
TEMPERATURE_KNOTS = (0.05, 0.15, 0.35, 0.65, 0.85, 0.95)
#: the temperature response is extended this far (°C) beyond the fitted range, then flat
TEMPERATURE_EXTRAPOLATE_C = 3.0
#: complete, correctly labelled (day > 12) days needed to fit the calendar model
CALENDAR_MIN_TRAIN_DAYS = 56


@dataclass
class _Days:
    """One region's complete local days (all their steps on the grid) and their context.

    ``dates``/``starts`` cover every local day with exactly one day's steps (clock-change
    days have more or fewer and are left out); ``ok`` marks those whose load is fully
    present, the only ones the calendar model scores.
    """

    dates: pd.DatetimeIndex  # local calendar dates (naive)
    starts: np.ndarray  # grid position of each day's first step
    ok: np.ndarray  # the day's load is complete and positive
    load: np.ndarray  # log load, days × spd (ok days only are finite)
    temp: np.ndarray | None  # °C, days × spd, gaps filled with the day's mean


def _complete_days(frame: pd.DataFrame, spd: int, tz: str) -> _Days | None:
    local = frame.index.tz_convert(tz)
    dates = local.normalize().tz_localize(None)
    codes, uniques = pd.factorize(dates)
    counts = np.bincount(codes)
    first = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
    starts = first[counts[codes[first]] == spd]
    if not len(starts):
        return None
    grid = starts[:, None] + np.arange(spd)
    with np.errstate(invalid="ignore", divide="ignore"):
        load = np.log(frame[LOAD].to_numpy(dtype=float)[grid])
    ok = np.isfinite(load).all(axis=1)
    temp = None
    if TEMPERATURE in frame and frame[TEMPERATURE].notna().any():
        t = frame[TEMPERATURE].to_numpy(dtype=float)[grid]
        fill = float(np.nanmean(frame[TEMPERATURE].to_numpy(dtype=float)))
        known = ~np.isnan(t)
        row_mean = np.where(known.any(axis=1), np.where(known, t, 0).sum(axis=1) / np.maximum(known.sum(axis=1), 1), fill)
        temp = np.where(known, t, row_mean[:, None])
    return _Days(dates=pd.DatetimeIndex(uniques[codes[starts]]), starts=starts, ok=ok, load=load, temp=temp)


class _CalendarModel:
    """Expected log-load profile of a day from its calendar and its weather.

    One least-squares regression per step of day on: day type (weekday one-hot, a
    public holiday counted as a Sunday — the usual grid behaviour, and a holiday
    effect cannot be learned from the few holidays in a year), up to three annual
    harmonics (fewer for tables shorter than a year),
    a linear trend, and a piecewise-linear response to the day's mean temperature and
    to the step's temperature (knots at quantiles of daily means, tails included).

    It is fitted **only on days with day-of-month > 12** that are not public
    holidays: those can never be part of a day/month transposition, so the model is
    clean even when a whole file is transposed. A day's cost under a context is the
    mean squared robust z of its residuals, clipped, so one odd hour cannot decide.
    """

    def __init__(self, days: _Days, country: str | None) -> None:
        self.days = days
        d = days.dates
        self.t0 = d[0]
        self.holiday = holiday_flags(d, country) > 0
        self.calendar = self._calendar(d, self.holiday)
        # holidays stay out of the fit: counted as Sundays for scoring, but their depth
        # varies too much (Tết, Christmas) to let them bend the model
        train = (d.day > 12) & days.ok & ~self.holiday
        self.knots = None
        if days.temp is not None:
            fit_temp = days.temp[train]
            self.knots = np.quantile(fit_temp.mean(axis=1), TEMPERATURE_KNOTS)
            # a little beyond the fitted range the response is held flat: a straight
            # line extrapolated far into an unseen cold spell invents loads
            m = TEMPERATURE_EXTRAPOLATE_C
            self.daily_range = (fit_temp.mean(axis=1).min() - m, fit_temp.mean(axis=1).max() + m)
            self.step_range = (fit_temp.min() - m, fit_temp.max() + m)
        every = np.arange(len(d))
        x = self.design(every, every)
        self._fit(x, train)
        own = self.cost(every, every, every)
        #: a day costing more than this is unusual even under its own calendar
        self.unusual = float(np.quantile(own[train], CALENDAR_UNUSUAL_QUANTILE))
        #: what an ordinary day costs (the unusual tail left out)
        self.typical = float(np.median(own[train & (own <= self.unusual)]))
        self.own = own
        self.n_train = int(train.sum())
        # the prediction splits into a calendar part and a weather part, so that "this
        # day's load under that day's calendar" costs one lookup per day, not a design
        nc = self.calendar.shape[1]
        self.calendar_part = self.calendar @ self.beta[:, :nc].T
        self.weather_part = np.einsum("dsf,sf->ds", x[..., nc:], self.beta[:, nc:])
        self.train = train

    def _fit(self, x: np.ndarray, train: np.ndarray) -> None:
        spd = self.days.load.shape[1]
        y = self.days.load
        self.beta = np.stack([np.linalg.lstsq(x[train, s], y[train, s], rcond=None)[0] for s in range(spd)])
        resid = y[train] - self._predict(x[train])
        med = np.median(resid, axis=0)
        self.sigma = np.maximum(1.4826 * np.median(np.abs(resid - med), axis=0), 1e-6)

    def _calendar(self, d: pd.DatetimeIndex, holiday: np.ndarray) -> np.ndarray:
        day_type = np.where(holiday, 6, d.day_of_week.to_numpy())
        weekday = np.eye(7)[day_type]
        doy = d.day_of_year.to_numpy() / 365.25
        # annual harmonics only as far as the span can pin them down (a 4-month table
        # would extrapolate them wildly into its own unseen weeks)
        span_years = (d[-1] - d[0]).days / 365.25
        harmonics = 3 if span_years >= 0.9 else 1 if span_years >= 0.5 else 0
        fourier = [f(2 * np.pi * k * doy) for k in range(1, harmonics + 1) for f in (np.sin, np.cos)]
        trend = (d - self.t0).days.to_numpy() / 365.25
        return np.column_stack([weekday, *fourier, trend])

    def _hinge(self, t: np.ndarray) -> np.ndarray:
        return np.stack([t, *[np.maximum(0.0, t - k) for k in self.knots]], axis=-1)

    def design(self, calendar_of: np.ndarray, weather_of: np.ndarray, calendar: np.ndarray | None = None) -> np.ndarray:
        """Design tensor (days × steps × features): calendar of one day, weather of another."""
        cal = (self.calendar if calendar is None else calendar)[calendar_of]
        spd = self.days.load.shape[1]
        parts = [np.repeat(cal[:, None, :], spd, axis=1)]
        if self.knots is not None:
            temp = self.days.temp[weather_of]
            daily = self._hinge(np.clip(temp.mean(axis=1), *self.daily_range))
            parts += [np.repeat(daily[:, None, :], spd, axis=1), self._hinge(np.clip(temp, *self.step_range))]
        return np.concatenate(parts, axis=-1)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return np.einsum("dsf,sf->ds", x, self.beta)

    def cost(self, load_of: np.ndarray, calendar_of: np.ndarray, weather_of: np.ndarray,
             calendar: np.ndarray | None = None) -> np.ndarray:
        """Cost of the load of days ``load_of`` under the calendar/weather of other days."""
        pred = self._predict(self.design(calendar_of, weather_of, calendar))
        z = (self.days.load[load_of] - pred) / self.sigma
        return np.mean(np.minimum(z**2, CALENDAR_CLIP_Z**2), axis=1)


    def fast_cost(self, load_of: np.ndarray, calendar_of: np.ndarray, weather_of: np.ndarray) -> np.ndarray:
        """:meth:`cost` for the model's own calendars (precomputed parts: many alternatives, fast)."""
        pred = self.calendar_part[calendar_of] + self.weather_part[weather_of]
        z = (self.days.load[load_of] - pred) / self.sigma
        return np.mean(np.minimum(z**2, CALENDAR_CLIP_Z**2), axis=1)


def _calendar_model(frame: pd.DataFrame, spd: int, tz: str, country: str | None) -> _CalendarModel | None:
    days = _complete_days(frame, spd, tz)
    if days is None or int(((days.dates.day > 12) & days.ok).sum()) < CALENDAR_MIN_TRAIN_DAYS:
        return None
    return _CalendarModel(days, country)


def _day_type(model: _CalendarModel) -> list[dict[str, Any]]:
    """Labelled Sundays/holidays that behave like workdays, and workdays that behave like Sundays."""
    d = model.days.dates
    holiday = model.holiday
    weekday = d.day_of_week.to_numpy()
    sunday_like = (weekday == 6) | holiday
    workday = (weekday < 5) & ~holiday
    alt = model.calendar.copy()
    alt[:, :7] = 0.0
    alt[workday, 6] = 1.0  # a workday under a Sunday's calendar
    alt[sunday_like, 2] = 1.0  # a Sunday/holiday under a Wednesday's calendar
    idx = np.flatnonzero((workday | sunday_like) & model.days.ok)
    own = model.own[idx]
    other = model.cost(idx, idx, idx, calendar=alt)
    flag = (other < CALENDAR_RATIO * own) & (own - other > CALENDAR_MARGIN * model.typical)
    return [
        {"date": d[i].date().isoformat(), "labelled": "sunday/holiday" if sunday_like[i] else "workday",
         "behaves_like": "workday" if sunday_like[i] else "sunday", "cost_labelled": round(float(o), 3),
         "cost_other": round(float(c), 3)}
        for i, o, c in zip(idx[flag], own[flag], other[flag], strict=True)
    ]

