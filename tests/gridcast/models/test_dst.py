"""Clock changes, north and south: refits whose window ends or starts on a clock-change day.

Issue 16: on a US grid the ensemble's weekly SARIMAX refit landed on the spring clock
change (data up to 11:00 UTC, four hours after the change) and forecast ±3·10¹¹ MW
for a week. The cause was the SARIMAX's daily Fourier β, fitted on the handful of
rows after the change (see :func:`gridcast.models.sarimax.differenced_beta`). These
tests rebuild that refit on seeded synthetic regions in America/New_York and
Australia/Melbourne, spring and autumn, with quick settings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridcast.models.ensemble import EnsembleForecaster
from gridcast.models.sarimax import SarimaxForecaster, differenced_beta
from gridcast.schema import LOAD, TEMPERATURE, region_frame
from training.data.synthetic import TIMEZONES, generate

WINDOW_WEEKS = 3
HORIZON = 7 * 24
#: (country, season, the UTC instant the clocks change); every one is on a local Sunday
CHANGES = [
    ("US", "spring", "2023-03-12 07:00"),  # 02:00 EST -> 03:00 EDT
    ("US", "autumn", "2023-11-05 06:00"),  # 02:00 EDT -> 01:00 EST
    ("AU", "spring", "2023-09-30 16:00"),  # 02:00 AEST -> 03:00 AEDT, Sunday 1 October
    ("AU", "autumn", "2023-04-01 16:00"),  # 03:00 AEDT -> 02:00 AEST, Sunday 2 April
]
_REGIONS: dict[tuple[str, str], pd.DataFrame] = {}


def region(country: str, change: pd.Timestamp) -> pd.DataFrame:
    """A seeded region from 5 weeks before the change to 5 weeks after it."""
    key = (country, str(change))
    if key not in _REGIONS:
        start = (change - pd.Timedelta(days=35)).tz_convert(TIMEZONES[country]).strftime("%Y-%m-%d")
        df, _ = generate(days=70, country=country, seed=11, start=start)
        _REGIONS[key] = region_frame(df, "region-1")
    return _REGIONS[key]


def assert_sane(fc: pd.DataFrame, actual: pd.DataFrame, max_mape: float) -> float:
    assert np.isfinite(fc.to_numpy()).all()
    load = actual[LOAD].to_numpy()
    mean = fc["mean"].reindex(actual.index).to_numpy()
    mape = float(np.mean(np.abs(mean - load) / load) * 100)
    assert mape < max_mape, f"MAPE {mape:.3g} %"
    return mape


def test_the_changes_are_local_sunday_clock_changes():
    for country, _, when in CHANGES:
        t = pd.Timestamp(when, tz="UTC")
        before, after = (t - pd.Timedelta(minutes=1)).tz_convert(TIMEZONES[country]), t.tz_convert(TIMEZONES[country])
        assert before.utcoffset() != after.utcoffset()
        assert after.day_of_week == 6


@pytest.mark.parametrize(("country", "season", "when"), CHANGES, ids=[f"{c}-{s}" for c, s, _ in CHANGES])
@pytest.mark.parametrize("hours_after", [4, -4], ids=["window-ends-4h-after", "window-ends-4h-before"])
def test_sarimax_refit_on_the_clock_change_day(country, season, when, hours_after):
    """A window that ends a few hours after (or before) the change: sane week-ahead forecasts."""
    change = pd.Timestamp(when, tz="UTC")
    frame = region(country, change)
    cut = change + pd.Timedelta(hours=hours_after)
    if hours_after > 0:  # the refit's last day is the clock-change day itself
        assert cut.tz_convert(TIMEZONES[country]).date() == change.tz_convert(TIMEZONES[country]).date()
    model = SarimaxForecaster(window_weeks=WINDOW_WEEKS, maxiter=10, country=country, tz=TIMEZONES[country])
    model.fit(frame[frame.index < cut])
    assert np.abs(model.params_).max() < 1e5  # before the fix: daily Fourier β of ±1e11
    future = frame[frame.index >= cut].iloc[:HORIZON]
    fc = model.predict(HORIZON, future_covariates=future[[TEMPERATURE]], level=(90,))
    # before the fix: MAPE ~1e9 % (4 h after); across the change (4 h before) ~4.5 %
    assert_sane(fc, future, max_mape=3.5)


@pytest.mark.parametrize(("country", "season", "when"), CHANGES[::3], ids=["US-spring", "AU-autumn"])
def test_sarimax_window_that_starts_on_the_clock_change_day(country, season, when):
    change = pd.Timestamp(when, tz="UTC")
    frame = region(country, change)
    for offset in (-4, 4):  # the window's first rows 4 h before / after the change
        cut = change + pd.Timedelta(weeks=WINDOW_WEEKS, hours=offset)
        model = SarimaxForecaster(window_weeks=WINDOW_WEEKS, maxiter=10, country=country, tz=TIMEZONES[country])
        model.fit(frame[frame.index < cut])
        assert model.fit_range_[0] == (change + pd.Timedelta(hours=offset)).isoformat()
        future = frame[frame.index >= cut].iloc[:HORIZON]
        assert_sane(model.predict(HORIZON, future_covariates=future[[TEMPERATURE]], level=(90,)), future, 3.5)


@pytest.mark.parametrize(("country", "season", "when"), [CHANGES[0], CHANGES[3]], ids=["US-spring", "AU-autumn"])
def test_ensemble_weekly_member_refit_lands_on_the_clock_change_day(country, season, when):
    """The issue's path: the ensemble refits its SARIMAX inside ``update`` on the change day."""
    change = pd.Timestamp(when, tz="UTC")
    frame = region(country, change)
    cut = change + pd.Timedelta(hours=4)
    sarimax = {"window_weeks": WINDOW_WEEKS, "maxiter": 10, "country": country, "tz": TIMEZONES[country]}
    ens = EnsembleForecaster(members=["sarimax", "naive"], member_params={"sarimax": sarimax}, val_days=2,
                             member_refit_days={"sarimax": 7}, buffer_days=WINDOW_WEEKS * 7 + 7)
    ens.fit(frame[frame.index < cut - pd.Timedelta(days=5)])
    ens.update(frame[(frame.index >= cut - pd.Timedelta(days=5)) & (frame.index < cut)])
    assert ens.fitted_at_["sarimax"] == cut - pd.Timedelta(hours=1)  # refitted on data up to the change day
    future = frame[frame.index >= cut].iloc[:HORIZON]
    fc = ens.predict(HORIZON, future_covariates=future[[TEMPERATURE]], level=(90,))
    assert_sane(fc, future, max_mape=4.0)


def test_a_column_seen_on_a_few_rows_is_not_identified():
    """Four non-zero differenced rows (the hours after a change) leave β at 0, not at ±1e11."""
    rng = np.random.default_rng(0)
    n = 500
    dx = np.zeros((n, 3))
    dx[:, 0] = rng.integers(0, 2, n)  # a weekday dummy: identified
    dx[-4:, 1:] = rng.normal(0, 0.3, (4, 2))  # two Fourier columns on 4 rows only
    dy = 50 * dx[:, 0] + rng.normal(0, 5, n)
    beta, identified = differenced_beta(dx, dy, scale=np.ones(3), min_support=24)
    assert identified.tolist() == [True, False, False]
    assert beta[0] == pytest.approx(50, abs=2) and beta[1] == beta[2] == 0.0


def test_exactly_collinear_columns_get_a_finite_minimum_norm_beta():
    """Temperature and heating degrees while it is always cold: Δhdd = −Δtemp."""
    rng = np.random.default_rng(1)
    dt = rng.normal(0, 1, 400)
    dx = np.column_stack([dt, -dt])
    beta, _ = differenced_beta(dx, -20 * dt, scale=np.ones(2), min_support=24)
    assert beta == pytest.approx([-10.0, 10.0], abs=1e-6)
