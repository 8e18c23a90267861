"""The two-stage SARIMAX: a calendar/weather regression on a long window, SARIMA on its residuals.

Stage 1 (:mod:`gridcast.models.calendar_regression`) is checked on a series it can
represent exactly; the two-stage forecaster on seeded synthetic regions of a few
months (the minimum long window is lowered so that the tests stay quick), including
refits that end on a clock-change day, save/load and the ``history`` path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridcast.models.base import Forecaster
from gridcast.features import calendar_features
from gridcast.models.calendar_regression import CalendarRegression, regression_terms, special_days, trailing_mean
from gridcast.models.sarimax import SarimaxForecaster
from gridcast.schema import LOAD, TEMPERATURE, region_frame
from training.data.synthetic import TIMEZONES, generate

TWO_STAGE = {"window_weeks": 3, "maxiter": 10, "long_window_weeks": 20, "min_long_weeks": 12}


@pytest.fixture(scope="module")
def long_region() -> pd.DataFrame:
    """One Spanish region, 20 weeks hourly, seed 5."""
    df, _ = generate(days=140, country="ES", seed=5, start="2023-01-02")
    return region_frame(df, "region-1")


def _two_stage(**extra) -> SarimaxForecaster:
    return SarimaxForecaster(country="ES", tz=TIMEZONES["ES"], **{**TWO_STAGE, **extra})


def test_trailing_mean_uses_the_values_before_and_averages_what_there_is():
    temp = np.array([4.0, 6.0, 8.0])
    assert trailing_mean(temp, np.array([0.0, 2.0]), 3).tolist() == [2.0, 4.0, 6.0]
    assert trailing_mean(temp, None, 3).tolist() == [4.0, 5.0, 6.0]


def test_stage1_recovers_a_series_made_of_its_own_terms():
    index = pd.date_range("2022-01-01", periods=24 * 500, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    temp = 15 + 10 * np.sin(np.arange(len(index)) * 2 * np.pi / (24 * 365)) + rng.normal(0, 3, len(index))
    x = regression_terms(index, temp, country="ES", tz="Europe/Madrid", steps=24)
    coef = rng.normal(0, 100, x.shape[1])
    load = 20_000 + x @ coef
    reg = CalendarRegression(country="ES", tz="Europe/Madrid", steps=24, ridge=1e-10).fit(index, load, temp)
    fitted = reg.predict(index, temp)
    assert np.max(np.abs(fitted - load)) < 1e-3 * np.std(load)


def test_stage1_needs_the_long_window_else_the_single_stage_model(long_region):
    two = _two_stage().fit(long_region)
    assert two.stage1_ is not None and two.params_.size == 1 + 6  # β (= 1) + ARMA(2,1)(1,1) + σ²
    assert two.params_[0] == 1.0
    short = _two_stage(min_long_weeks=30).fit(long_region)
    legacy = _two_stage(long_window_weeks=0).fit(long_region)
    assert short.stage1_ is None
    pd.testing.assert_frame_equal(short.predict(48), legacy.predict(48))


def test_two_stage_forecasts_are_sane(long_region):
    # the accuracy gain shows on years of real data (BENCHMARKS.md); on 20 synthetic
    # weeks, made of the single-stage model's own terms, the two forms are alike
    cut = len(long_region) - 14 * 24
    model = _two_stage().fit(long_region.iloc[:cut])
    assert model.hour_scale_ is not None and model.hour_scale_.shape == (24,)
    ape = []
    for day in range(0, 14, 2):
        origin = cut + day * 24
        actual = long_region.iloc[origin:origin + 36]
        fc = model.predict(36, future_covariates=actual[[TEMPERATURE]], level=(90,), history=long_region.iloc[:origin])
        assert np.isfinite(fc.to_numpy()).all()
        assert (fc["lo-90"] < fc["mean"]).all() and (fc["mean"] < fc["hi-90"]).all()
        ape.append(np.abs(fc["mean"].to_numpy() - actual[LOAD].to_numpy()) / actual[LOAD].to_numpy())
    assert float(np.mean(ape) * 100) < 3.0


def test_two_stage_save_load_round_trip_is_identical(long_region, tmp_path):
    cut = len(long_region) - 48
    model = _two_stage().fit(long_region.iloc[:cut])
    model.stage1_.special_sd_ = 123.0  # saved and restored exactly
    future = long_region.iloc[cut:][[TEMPERATURE]]
    before = model.predict(48, future_covariates=future, level=(80, 95))
    model.save(tmp_path / "m")
    loaded = Forecaster.load(tmp_path / "m")
    assert loaded.stage1_ is not None and loaded.stage1_.special_sd_ == 123.0
    pd.testing.assert_frame_equal(loaded.predict(48, future_covariates=future, level=(80, 95)), before)
    # and without a weather forecast (persistence of the last observed day)
    pd.testing.assert_frame_equal(loaded.predict(24), model.predict(24))


def test_two_stage_update_then_predict_matches_the_forecast_from_that_history(long_region):
    cut = len(long_region) - 72
    model = _two_stage().fit(long_region.iloc[:cut])
    other = _two_stage().fit(long_region.iloc[:cut])
    model.update(long_region.iloc[cut:cut + 24])
    future = long_region.iloc[cut + 24:cut + 48][[TEMPERATURE]]
    a = model.predict(24, future_covariates=future)
    b = other.predict(24, future_covariates=future, history=long_region.iloc[:cut + 24])
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=2e-3)


@pytest.mark.parametrize(("country", "when"), [("ES", "2023-03-26 01:00"), ("AU", "2023-04-01 16:00")],
                         ids=["ES-spring", "AU-autumn"])
@pytest.mark.parametrize("hours_after", [4, 30], ids=["hours-after", "day-after"])
def test_two_stage_refit_on_the_clock_change_day(country, when, hours_after):
    change = pd.Timestamp(when, tz="UTC")
    start = (change - pd.Timedelta(days=100)).tz_convert(TIMEZONES[country]).strftime("%Y-%m-%d")
    df, _ = generate(days=107, country=country, seed=11, start=start)
    frame = region_frame(df, "region-1")
    end = change + pd.Timedelta(hours=hours_after)
    history, actual = frame[frame.index < end], frame[frame.index >= end].iloc[: 5 * 24]
    model = SarimaxForecaster(country=country, tz=TIMEZONES[country], **TWO_STAGE).fit(history)
    assert model.stage1_ is not None
    fc = model.predict(len(actual), future_covariates=actual[[TEMPERATURE]])
    assert np.isfinite(fc.to_numpy()).all()
    mape = float(np.mean(np.abs(fc["mean"].to_numpy() - actual[LOAD].to_numpy()) / actual[LOAD].to_numpy()) * 100)
    assert mape < 8.0, mape


def test_stage1_weather_error_shift_is_the_prediction_with_the_forecast_temperatures(long_region):
    """The shift at (lead, origin): stage 1 told the erroneous temperatures from that origin on − the observed."""
    frame = long_region.iloc[-30 * 24:]
    index, temp = frame.index, frame[TEMPERATURE].to_numpy(float)
    before = long_region[TEMPERATURE].to_numpy(float)[-31 * 24:-30 * 24]
    reg = CalendarRegression(country="ES", tz=TIMEZONES["ES"], steps=24).fit(
        long_region.index, long_region[LOAD].to_numpy(float), long_region[TEMPERATURE].to_numpy(float))
    origins = np.array([100, 300, len(index) - 10])
    error = np.random.default_rng(1).normal(0, 2.0, (48, len(origins)))
    shift = reg.weather_error_shift(index, temp, before, origins, error)
    base = reg.predict(index, temp, before)
    for k, o in enumerate(origins):
        told = temp.copy()
        n = min(48, len(index) - o)
        told[o:o + n] += error[:n, k]
        np.testing.assert_allclose(shift[:n, k], reg.predict(index, told, before)[o:o + n] - base[o:o + n], atol=1e-6)
        assert np.isnan(shift[n:, k]).all()
    assert np.abs(shift[:, :2]).mean() > 1.0  # synthetic load follows temperature: the error moves stage 1


def test_weather_error_widens_the_two_stage_intervals_where_temperature_drives_load(long_region):
    # calibrated on held-out forecasts told a forecast-like temperature, the intervals
    # hold its error: wider than the oracle calibration's (observed weather), and more
    # so at the longer leads where the error's spread is larger; the mean is the same
    cut = len(long_region) - 48
    future = long_region.iloc[cut:][[TEMPERATURE]]
    noisy = _two_stage().fit(long_region.iloc[:cut])
    oracle = _two_stage(weather_error=False).fit(long_region.iloc[:cut])
    a = noisy.predict(48, future_covariates=future, level=(90,))
    b = oracle.predict(48, future_covariates=future, level=(90,))
    np.testing.assert_allclose(a["mean"].to_numpy(), b["mean"].to_numpy())
    wide, narrow = (a["hi-90"] - a["lo-90"]).to_numpy(), (b["hi-90"] - b["lo-90"]).to_numpy()
    assert (wide[12:36].mean() / narrow[12:36].mean()) > 1.1  # the day-ahead leads
    assert (wide[12:36].mean() / narrow[12:36].mean()) > (wide[:6].mean() / narrow[:6].mean())
    # seeded: the same fit, the same intervals
    pd.testing.assert_frame_equal(_two_stage().fit(long_region.iloc[:cut]).predict(48, future_covariates=future,
                                                                                  level=(90,)), a)


@pytest.mark.parametrize("extra", [0.0, 300.0])
def test_stage1_special_sd_measures_what_special_days_add_to_the_error(extra):
    # a series made of stage 1's own terms plus noise, each special day also off by one
    # draw of spread ``extra``: leave-one-day-out residuals recover it (in-sample ones,
    # fitted by the special days' own terms, would not), and find ~0 when there is none
    index = pd.date_range("2022-01-01", periods=24 * 730, freq="h", tz="UTC")
    rng = np.random.default_rng(0)
    temp = 15 + 10 * np.sin(np.arange(len(index)) * 2 * np.pi / (24 * 365)) + rng.normal(0, 3, len(index))
    x = regression_terms(index, temp, country="ES", tz="Europe/Madrid", steps=24)
    special = special_days(calendar_features(index, country="ES", tz="Europe/Madrid", fourier={}))
    assert 0.05 < special.mean() < 0.2
    days = pd.factorize(index.tz_convert("Europe/Madrid").normalize())[0]
    off = rng.normal(0, extra, days.max() + 1)[days] if extra else 0.0
    load = 20_000 + x @ rng.normal(0, 100, x.shape[1]) + rng.normal(0, 100, len(index)) + np.where(special, off, 0)
    reg = CalendarRegression(country="ES", tz="Europe/Madrid", steps=24).fit(index, load, temp)
    assert reg.special_sd_ == pytest.approx(extra, abs=60.0)


def test_two_stage_intervals_widen_on_special_days_only(long_region):
    history = long_region[long_region.index < pd.Timestamp("2023-04-04 22:00", tz="UTC")]
    model = _two_stage().fit(history)  # then Wednesday 5 April; Holy Thursday, Good Friday
    covariates = long_region[[TEMPERATURE]].iloc[len(history):len(history) + 96]
    model.stage1_.special_sd_ = 0.0
    plain = model.predict(96, future_covariates=covariates, level=(90,))
    model.stage1_.special_sd_ = 50.0
    wider = model.predict(96, future_covariates=covariates, level=(90,))
    special = model.stage1_.special_days(plain.index)
    assert special.any() and not special.all()
    grow = (wider["hi-90"] - wider["lo-90"]).to_numpy() - (plain["hi-90"] - plain["lo-90"]).to_numpy()
    assert (grow[special] > 0).all() and (grow[~special] == 0).all()
    np.testing.assert_array_equal(wider["mean"].to_numpy(), plain["mean"].to_numpy())
