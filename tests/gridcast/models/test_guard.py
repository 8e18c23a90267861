"""The plausibility guard: the band rule, the check, and the proof with a member gone mad.

``HugeForecaster`` is a seasonal naive that answers ±3·10¹¹ MW (both signs, as the
issue's ensemble did) or NaN from a given time on: inside an ensemble it is dropped
for those forecasts, and in a backtest a model like it is answered by the fallback
chain and flagged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridcast.guard import METADATA_KEY, PlausibleBand, implausible
from gridcast.models.base import REGISTRY, Forecaster, SeasonalNaive, make
from gridcast.models.ensemble import EnsembleForecaster
from gridcast.schema import LOAD
from training.backtest import BacktestConfig, guarded_predict, run_backtest

HUGE = 3e11


class HugeForecaster(SeasonalNaive):
    """Seasonal naive whose forecasts from ``blow_from`` on are ±3e11 (or NaN)."""

    alias = "huge"

    def __init__(self, blow_from: str | None = None, nan: bool = False) -> None:
        super().__init__(season_days=7)
        self.params = {"blow_from": blow_from, "nan": nan}
        self.blow_from = None if blow_from is None else pd.Timestamp(blow_from)
        self.nan = nan

    def predict(self, horizon, future_covariates=None, level=(80, 95), history=None):
        fc = super().predict(horizon, future_covariates, level, history)
        if self.blow_from is None or fc.index[0] >= self.blow_from:
            sign = np.where(np.arange(horizon) % 2, -1.0, 1.0)
            fc["mean"] = np.nan if self.nan else HUGE * sign
        return fc


@pytest.fixture
def huge_registered(monkeypatch):
    monkeypatch.setitem(REGISTRY, "huge", f"{__name__}:HugeForecaster")


# -- the band and the check ------------------------------------------------------------
def test_band_is_the_observed_range_widened_by_one_range_and_clipped_at_zero():
    band = PlausibleBand.from_load(np.array([100.0, np.nan, 300.0, 250.0]))
    assert band == PlausibleBand(lo=0.0, hi=500.0)
    assert PlausibleBand.from_load(np.array([1000.0, 1200.0])) == PlausibleBand(lo=800.0, hi=1400.0)
    assert PlausibleBand.from_load(np.array([1000.0, 1200.0]), factor=0.5) == PlausibleBand(lo=900.0, hi=1300.0)


def test_band_of_a_net_load_that_went_negative_keeps_a_negative_margin():
    assert PlausibleBand.from_load(np.array([-50.0, 150.0])) == PlausibleBand(lo=-250.0, hi=350.0)


def test_band_of_a_flat_history_is_not_a_point():
    band = PlausibleBand.from_load(np.full(10, 500.0))
    assert band.lo == pytest.approx(450.0) and band.hi == pytest.approx(550.0)


def test_band_needs_some_load():
    with pytest.raises(ValueError):
        PlausibleBand.from_load(np.array([np.nan, np.nan]))
    with pytest.raises(ValueError):
        PlausibleBand.from_load(np.array([1.0]), factor=-1)


def test_band_metadata_round_trip_and_absence():
    band = PlausibleBand(lo=1.5, hi=9.0)
    assert band.to_metadata() == {"lo": 1.5, "hi": 9.0}
    assert PlausibleBand.from_metadata(band.to_metadata()) == band
    assert PlausibleBand.from_metadata({METADATA_KEY: band.to_metadata(), "alias": "sarimax"}) == band
    for absent in (None, {}, {"alias": "sarimax"}, {METADATA_KEY: None}, {"lo": "x", "hi": 1}, {"lo": 5, "hi": 1}):
        assert PlausibleBand.from_metadata(absent) is None


def test_implausible_per_row_and_for_one_forecast():
    band = PlausibleBand(lo=0.0, hi=100.0)
    rows = np.array([[10.0, 90.0], [10.0, 101.0], [-1.0, 5.0], [np.nan, 5.0], [np.inf, 5.0], [0.0, 100.0]])
    assert implausible(rows, band).tolist() == [False, True, True, True, True, False]
    assert implausible(np.array([10.0, 20.0]), band).shape == (1,)
    assert implausible(np.array([10.0, 200.0]), band).tolist() == [True]
    # without a band (a model saved before the guard): finiteness only
    assert implausible(rows, None).tolist() == [False, False, False, True, True, False]
    assert implausible(np.array([-HUGE, HUGE]), None).tolist() == [False]


def test_implausible_is_cheap_enough_for_every_served_forecast():
    import time

    band = PlausibleBand(lo=0.0, hi=1e5)
    x = np.random.default_rng(0).uniform(0, 1e5, (128, 168))
    t0 = time.perf_counter()
    for _ in range(100):
        implausible(x, band)
    assert (time.perf_counter() - t0) / 100 < 2e-3


# -- inside the ensemble -----------------------------------------------------------------
def test_ensemble_drops_an_implausible_member_and_renormalises(region_history, huge_registered):
    train = region_history.iloc[: -24 * 7]
    blow = str(train.index[-1] + pd.Timedelta(hours=1))  # fine during validation, mad afterwards
    ens = EnsembleForecaster(members=["naive", "huge"], val_days=3, member_params={"huge": {"blow_from": blow}})
    ens.fit(train)
    assert ens.weights_["huge"] == pytest.approx(0.5)  # same validation errors as the naive
    assert ens.band_ == PlausibleBand.from_load(train[LOAD].to_numpy())
    fc = ens.predict(48, level=(90,))
    pd.testing.assert_frame_equal(fc, ens.members_["naive"].predict(48, level=(90,)), check_freq=False)
    assert ens.member_drops_ == {"naive": 0, "huge": 1}
    assert ens.fallback_members()[0] in ("naive", "huge")
    # batches too
    from gridcast.models.base import ForecastRequest

    out = ens.predict_batch([ForecastRequest(id="a", horizon=24, level=(90,))])
    assert not implausible(out["a"]["mean"].to_numpy(), ens.band_)[0]
    assert ens.member_drops_["huge"] == 2


def test_ensemble_nan_member_is_dropped_and_the_band_survives_save_load(region_history, huge_registered, tmp_path):
    train = region_history.iloc[: -24 * 7]
    blow = str(train.index[-1] + pd.Timedelta(hours=1))
    ens = EnsembleForecaster(members=["naive", "huge"], val_days=3,
                             member_params={"huge": {"blow_from": blow, "nan": True}}).fit(train)
    fc = ens.predict(24, level=(90,))
    assert np.isfinite(fc.to_numpy()).all()
    loaded = Forecaster.load(ens.save(tmp_path / "ens"))
    assert loaded.band_ == ens.band_
    pd.testing.assert_frame_equal(loaded.predict(24, level=(90,)), fc)


# -- the fallback chain ----------------------------------------------------------------------
def test_guarded_predict_falls_back_to_the_best_plausible_member(region_history, huge_registered, monkeypatch):
    """An ensemble saved before the guard (no band inside) lets a huge member through: the chain catches it."""
    monkeypatch.setitem(REGISTRY, "sane", f"{__name__}:HugeForecaster")  # never blows up
    train = region_history.iloc[: -24 * 7]
    blow = str(train.index[-1] + pd.Timedelta(hours=1))
    ens = EnsembleForecaster(members=["huge", "sane", "naive"], val_days=3,
                             member_params={"huge": {"blow_from": blow}, "sane": {"blow_from": "2100-01-01T00:00Z"}})
    ens.fit(train)
    ens.band_ = None
    ens.weights_ = {"huge": 0.8, "sane": 0.15, "naive": 0.05}  # the mad member is the "best" one
    band = PlausibleBand.from_load(train[LOAD].to_numpy())
    assert implausible(ens.predict(24, level=(90,))["mean"].to_numpy(), band)[0]
    fc, by = guarded_predict(ens, "ensemble", band, train, 24, None, (90,))
    assert by == "sane"  # the huge member is tried first and fails, the next one answers
    pd.testing.assert_frame_equal(fc, ens.members_["sane"].predict(24, level=(90,)))

    # every member mad, or not an ensemble: the seasonal naive answers
    ens.weights_ = {"huge": 1.0, "sane": 0.0, "naive": 0.0}
    ens.members_["sane"] = ens.members_["huge"]
    fc, by = guarded_predict(ens, "ensemble", band, train, 24, None, (90,))
    assert by == "naive" and not implausible(fc["mean"].to_numpy(), band)[0]
    lone = make("huge", blow_from=blow).fit(train)
    fc, by = guarded_predict(lone, "huge", band, train, 24, None, (90,))
    assert by == "naive"
    np.testing.assert_allclose(fc["mean"], SeasonalNaive().fit(train).predict(24)["mean"])


def test_backtest_flags_counts_and_replaces_implausible_forecasts(region_history, huge_registered):
    start = region_history.index[-24 * 6]
    blow = str(start + pd.Timedelta(days=2))
    config = BacktestConfig(start=start, end=start + pd.Timedelta(days=4), horizon=24, weather="none", refit="2D")
    factories = {
        "naive": SeasonalNaive,
        "huge": lambda: make("huge", blow_from=blow),
        "ensemble": lambda: EnsembleForecaster(members=["naive", "huge"], val_days=2,
                                               member_params={"huge": {"blow_from": blow}}),
    }
    result = run_backtest(region_history, factories, config)
    fc = result.forecasts
    # the standalone mad model: its last 2 of 4 forecasts answered by the naive, flagged
    assert result.guard["huge"]["flagged"] == 2 and result.guard["huge"]["answered_by"] == {"naive": 2}
    huge = fc[fc["model"] == "huge"]
    assert huge["flagged"].sum() == 2 * 24 and set(huge.loc[huge["flagged"], "answered_by"]) == {"naive"}
    m = result.metrics
    assert np.isfinite(m["huge"]["overall"]["mape"])
    assert m["huge"]["overall"]["mape"] == pytest.approx(m["naive"]["overall"]["mape"])
    # the ensemble: the member is dropped inside, nothing reaches the guard
    assert result.guard["ensemble"]["flagged"] == 0
    assert result.guard["ensemble"]["member_drops"]["huge"] == 2
    assert m["ensemble"]["overall"]["mape"] <= m["naive"]["overall"]["mape"] + 1e-9
    assert result.guard["naive"] == {**result.guard["naive"], "flagged": 0, "answered_by": {}}
    assert "guard" in result.to_json()
