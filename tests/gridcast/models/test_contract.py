"""The model contract, for every model: shapes, ordered bounds, skill, persistence, update, no look-ahead.

Quick settings on the seeded synthetic series (10 weeks, hourly, Vietnamese
holidays); each model is fitted once per module. The comparisons are against the
real seasonal-naive model and real backtests — nothing is mocked.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from training.backtest import BacktestConfig, run_backtest
from gridcast.models.base import Forecaster, future_index, interval_columns, make
from gridcast.schema import LOAD, WEATHER

COUNTRY, TZ = "VN", "Asia/Ho_Chi_Minh"
TEST_DAYS = 7
QUICK: dict[str, dict] = {
    "naive": {},
    "sarimax": {"window_weeks": 3, "maxiter": 10, "country": COUNTRY, "tz": TZ},
    "lstm": {"quick": True, "country": COUNTRY, "tz": TZ, "seed": 0, "verbose": 0},
    "ensemble": {
        "members": ["sarimax", "naive"],
        "val_days": 3,
        "member_params": {"sarimax": {"window_weeks": 3, "maxiter": 10, "country": COUNTRY, "tz": TZ}},
    },
}
ALIASES = ["naive", "sarimax", "ensemble"]
if importlib.util.find_spec("gridcast.models.lstm") is not None:
    ALIASES.insert(2, "lstm")
#: relative tolerance of "update, then predict" vs "predict from a history with those rows"
UPDATE_RTOL = {"sarimax": 2e-3, "ensemble": 2e-3}


def build(alias: str) -> Forecaster:
    return make(alias, **QUICK[alias])


@pytest.fixture(scope="module")
def split(region_history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    cut = len(region_history) - 24 * TEST_DAYS
    return region_history.iloc[:cut], region_history.iloc[cut:]


@pytest.fixture(scope="module")
def fitted() -> dict[str, Forecaster]:
    """Fitted models by alias, filled on first use and shared by the module (fits are the slow part)."""
    return {}


def get_fitted(fitted: dict[str, Forecaster], alias: str, train: pd.DataFrame) -> Forecaster:
    if alias not in fitted:
        fitted[alias] = build(alias).fit(train)
    return fitted[alias]


def weather(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[[c for c in WEATHER if c in frame]]


def mape(actual: pd.Series, forecast: pd.Series) -> float:
    return float((np.abs(forecast.to_numpy() - actual.to_numpy()) / actual.to_numpy()).mean() * 100)


@pytest.mark.parametrize("alias", ALIASES)
def test_forecast_frame_shape_index_and_ordered_bounds(alias, fitted, split):
    train, test = split
    model = get_fitted(fitted, alias, train)
    fc = model.predict(36, future_covariates=weather(test), level=(95, 80))
    assert list(fc.columns) == interval_columns((80, 95))
    assert fc.index.equals(future_index(train.index[-1], "1h", 36))
    assert str(fc.index.tz) == "UTC"
    assert np.isfinite(fc.to_numpy()).all()
    eps = 1e-9 * fc["mean"].abs().max()
    assert (fc["lo-95"] <= fc["lo-80"] + eps).all()
    assert (fc["lo-80"] <= fc["mean"] + eps).all()
    assert (fc["mean"] <= fc["hi-80"] + eps).all()
    assert (fc["hi-80"] <= fc["hi-95"] + eps).all()
    assert (fc["hi-80"] - fc["lo-80"] > 0).all()


@pytest.mark.parametrize("alias", [a for a in ALIASES if a != "naive"])
def test_beats_seasonal_naive_on_synthetic_series(alias, fitted, split):
    train, test = split
    model = get_fitted(fitted, alias, train)
    naive = get_fitted(fitted, "naive", train)
    target = test[LOAD].iloc[:48]
    ours = mape(target, model.predict(48, future_covariates=weather(test))["mean"])
    base = mape(target, naive.predict(48)["mean"])
    assert ours < base, f"{alias} MAPE {ours:.2f} % is not better than naive {base:.2f} %"


@pytest.mark.parametrize("alias", ALIASES)
def test_save_load_round_trip_is_identical(alias, fitted, split, tmp_path):
    train, test = split
    model = get_fitted(fitted, alias, train)
    before = model.predict(24, future_covariates=weather(test), level=(80, 90))
    model.save(tmp_path / alias)
    loaded = Forecaster.load(tmp_path / alias)
    assert loaded.alias == alias
    after = loaded.predict(24, future_covariates=weather(test), level=(80, 90))
    # values and timestamps identical (the index's time unit may come back as us
    # from ISO strings: pandas 3 parses them so; the instants are the same)
    assert before.index.equals(after.index)
    pd.testing.assert_frame_equal(before, after, check_exact=True, check_freq=False, check_index_type=False)


@pytest.mark.parametrize("alias", ALIASES)
def test_update_then_predict_matches_forecast_from_history_with_those_rows(alias, fitted, split, tmp_path):
    train, test = split
    # work on a copy: the shared fitted model must stay as fitted
    get_fitted(fitted, alias, train).save(tmp_path / "m")
    updated = Forecaster.load(tmp_path / "m")
    reference = Forecaster.load(tmp_path / "m")
    new_rows = test.iloc[:24]
    future = weather(test.iloc[24:])
    got = updated.update(new_rows).predict(24, future_covariates=future)
    expected = reference.predict(24, future_covariates=future, history=pd.concat([train, new_rows]))
    assert got.index.equals(expected.index)
    assert got.index[0] == test.index[24]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=UPDATE_RTOL.get(alias, 1e-6))
    if alias != "naive":  # same-hour-last-week does not depend on the last day
        # the update changed the forecast (it did absorb the rows): not the pre-update one
        stale = reference.predict(48, future_covariates=weather(test)).iloc[24:]
        assert not np.allclose(got["mean"].to_numpy(), stale["mean"].to_numpy(), rtol=1e-9)


@pytest.mark.parametrize("alias", ALIASES)
def test_no_look_ahead_poisoned_future_leaves_backtest_forecasts_unchanged(alias, region_history):
    """Origins o1 (fit), o2 (update), o3 (refit); poisoning from o2 on and from o3 on.

    The LSTM (slow to fit) is refitted only at o1: o2 and o3 test its update path; the
    refit path is the backtest's strict slice, which the other models cover.
    """
    frame = region_history.iloc[-24 * 21:] if alias != "lstm" else region_history
    start = frame.index[-24 * 5]
    config = BacktestConfig(start=start, end=start + pd.Timedelta(days=3), horizon=24, step="24h",
                            refit="7D" if alias == "lstm" else "2D", protocol="rolling", weather="oracle",
                            levels=(80,))
    factories = {alias: lambda: build(alias)}
    clean = run_backtest(frame, factories, config).forecasts
    origins = sorted(clean["origin"].unique())
    assert len(origins) == 3
    for cut in origins[1:]:
        poisoned = frame.copy()
        poisoned.loc[poisoned.index >= cut, LOAD] = 1e7  # absurd values a leak could not hide
        dirty = run_backtest(poisoned, factories, config).forecasts
        keep = clean["origin"] <= cut
        cols = ["mean", "lo-80", "hi-80"]
        pd.testing.assert_frame_equal(clean.loc[keep, cols], dirty.loc[keep, cols], check_exact=True)
        # and the poison is visible to later origins (the test can fail); the naive
        # forecast of the next day comes from a week back, which is not poisoned
        if cut != origins[-1] and alias != "naive":
            later = clean["origin"] > cut
            assert not np.allclose(clean.loc[later, "mean"], dirty.loc[later, "mean"])
