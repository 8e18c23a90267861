"""The ensemble's per-lead weights: they learn from the members' errors, persist exactly, skip mad members.

``NoisyNaive`` is a seasonal naive that, from a given time on, adds its own noise
(6 % of the forecast, seeded by the origin): identical to the naive during validation
(equal weights), consistently worse afterwards whatever the series does. Nothing of the ensemble is mocked; the day-ahead loop is the backtest's
(predict, then update with the day's actuals).
"""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pandas as pd
import pytest

from gridcast.models.base import REGISTRY, Forecaster, SeasonalNaive
from gridcast.models.ensemble import EnsembleForecaster
from gridcast.models.weights import LeadWeights, PendingForecasts, simplex_min_variance


class NoisyNaive(SeasonalNaive):
    """Seasonal naive whose forecasts from ``worse_from`` on carry ``noise`` (relative) of its own."""

    alias = "noisy"

    def __init__(self, worse_from: str | None = None, noise: float = 0.06) -> None:
        super().__init__(season_days=7)
        self.params = {"worse_from": worse_from, "noise": noise}
        self.worse_from = None if worse_from is None else pd.Timestamp(worse_from)
        self.noise = noise

    def predict(self, horizon, future_covariates=None, level=(80, 95), history=None):
        fc = super().predict(horizon, future_covariates, level, history)
        if self.worse_from is not None and fc.index[0] >= self.worse_from:
            rng = np.random.default_rng(fc.index[0].value // 10**9)
            fc = fc.mul(1 + self.noise * rng.standard_normal(horizon), axis=0)
        return fc


@pytest.fixture
def noisy_registered(monkeypatch):
    monkeypatch.setitem(REGISTRY, "noisy", f"{__name__}:NoisyNaive")


def day_ahead(ens: EnsembleForecaster, frame: pd.DataFrame, start: int, days: int) -> None:
    """Forecast 36 h from each daily origin, then absorb the day's actuals."""
    for d in range(days):
        o = start + 24 * d
        ens.predict(36, level=(90,))
        ens.update(frame.iloc[o:o + 24])


def make_ensemble(train: pd.DataFrame, **kw) -> EnsembleForecaster:
    worse = str(train.index[-1] + pd.Timedelta(hours=1))
    return EnsembleForecaster(members=["naive", "noisy"], val_days=5,
                              member_params={"noisy": {"worse_from": worse}}, **kw).fit(train)


def test_weights_move_to_the_member_that_stays_better(region_history, noisy_registered):
    cut = len(region_history) - 24 * 15
    ens = make_ensemble(region_history.iloc[:cut], half_life_days=7)
    # same validation errors: equal weights at every lead
    np.testing.assert_allclose(ens.lead_weights_, 0.5)
    day_ahead(ens, region_history, cut, 14)
    # 14 days of a member with noise of its own: at every lead the loop scored (36 h
    # ahead; leads 37-48 keep their validation weights) the naive gained weight, and
    # it carries nearly all of it (14 samples a lead: a few leads stay below)
    assert ens.lead_weights_.shape == (48, 2)
    assert (ens.lead_weights_[:33, 0] > 0.6).all(), ens.lead_weights_[:33, 0].min()
    assert ens.lead_weights_[:33, 0].mean() > 0.9
    assert ens.weights_["naive"] > 0.75 and ens.fallback_members()[0] == "naive"  # leads 37-48 at 0.5
    # and the combination is (nearly) the good member's forecast
    fc = ens.predict(24, level=(90,))
    good = ens.members_["naive"].predict(24, level=(90,))
    bad = ens.members_["noisy"].predict(24, level=(90,))
    assert np.abs(fc["mean"] - good["mean"]).mean() < 0.2 * np.abs(bad["mean"] - good["mean"]).mean()


def test_weights_survive_save_load_exactly_and_keep_learning(region_history, noisy_registered, tmp_path):
    cut = len(region_history) - 24 * 10
    ens = make_ensemble(region_history.iloc[:cut])
    day_ahead(ens, region_history, cut, 4)
    loaded = Forecaster.load(ens.save(tmp_path / "ens"))
    np.testing.assert_array_equal(loaded.lead_weights_, ens.lead_weights_)
    assert loaded.weights_ == ens.weights_
    np.testing.assert_array_equal(loaded.learner_.cov, ens.learner_.cov)
    np.testing.assert_array_equal(loaded.learner_.count, ens.learner_.count)
    assert loaded.learner_.as_of == ens.learner_.as_of
    pd.testing.assert_frame_equal(loaded.predict(36, level=(80, 90)), ens.predict(36, level=(80, 90)),
                                  check_exact=True, check_freq=False, check_index_type=False)
    # the weights are in the saved metadata
    meta = json.loads((tmp_path / "ens" / "forecaster.json").read_text())
    assert meta["state"]["weights_"] == ens.weights_
    assert np.array_equal(np.array(meta["state"]["lead_weights_"]), ens.lead_weights_)
    # the loaded model goes on learning from its own forecasts
    before = loaded.lead_weights_.copy()
    day_ahead(loaded, region_history, cut + 96, 2)
    assert not np.allclose(loaded.lead_weights_[:24], before[:24])


def test_an_implausible_member_gets_no_weight_and_is_not_scored(region_history, noisy_registered):
    cut = len(region_history) - 24 * 6
    ens = make_ensemble(region_history.iloc[:cut])
    ens.members_["noisy"].noise = 1e9  # from now on its forecasts are absurd
    fc = ens.predict(36, level=(90,))
    pd.testing.assert_frame_equal(fc, ens.members_["naive"].predict(36, level=(90,)), check_freq=False)
    assert ens.member_drops_ == {"naive": 0, "noisy": 1}
    weights, cov = ens.lead_weights_.copy(), ens.learner_.cov.copy()
    ens.update(region_history.iloc[cut:cut + 24])
    # the absurd forecast was not scored: the sums only decayed, the weights did not move
    factor = ens.learner_.cov.sum() / cov.sum()
    assert 0 < factor < 1
    np.testing.assert_allclose(ens.learner_.cov, cov * factor, rtol=1e-12)
    np.testing.assert_allclose(ens.lead_weights_, weights, rtol=1e-12)


# -- the weights' arithmetic --------------------------------------------------------------
def random_cov(rng: np.random.Generator, m: int) -> np.ndarray:
    a = rng.standard_normal((m, m)) * rng.uniform(0.2, 2.0, m)
    common = rng.standard_normal(m) * rng.uniform(0.5, 3.0)  # strongly correlated errors, like the members'
    return a @ a.T + np.outer(common, common)


@pytest.mark.parametrize("seed", range(6))
def test_simplex_weights_are_optimal_and_never_worse_than_the_best_member(seed):
    rng = np.random.default_rng(seed)
    cov = random_cov(rng, 3)
    w = simplex_min_variance(cov)
    assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
    obj = w @ cov @ w
    assert obj <= np.diag(cov).min() * (1 + 1e-9)
    inv = 1 / np.diag(cov)
    assert obj <= (inv / inv.sum()) @ cov @ (inv / inv.sum()) * (1 + 1e-9)
    # no point of a fine grid on the simplex does better
    grid = np.linspace(0, 1, 41)
    best = min(np.array([a, b, 1 - a - b]) @ cov @ np.array([a, b, 1 - a - b])
               for a, b in product(grid, grid) if a + b <= 1 + 1e-12)
    assert obj <= best * (1 + 1e-9)
    # shrinkage may change the choice, never make it worse than the best member
    shrunk = simplex_min_variance(cov, shrinkage=0.5)
    assert shrunk @ cov @ shrunk <= np.diag(cov).min() * (1 + 1e-9)


def test_inverse_mse_is_not_what_correlated_errors_need():
    """Issue 16's failure: a better member and a worse one with correlated errors."""
    cov = np.array([[1.0, 0.8 * np.sqrt(2.5)], [0.8 * np.sqrt(2.5), 2.5]])
    inv = np.array([1.0, 0.4]) / 1.4
    assert inv @ cov @ inv > 1.0  # inverse-MSE: worse than the better member alone
    assert simplex_min_variance(cov).tolist() == [1.0, 0.0]


def test_errors_fade_with_the_half_life():
    lw = LeadWeights.empty(("a", "b"), n_leads=1, pool=0, shrinkage=0.0, half_life_s=3600.0)
    lw.observe(np.array([0]), np.array([[1.0, 2.0]]), at=0)
    lw.observe(np.array([5]), np.array([[np.nan, 1.0]]), at=2 * 3600 * 10**9)  # skipped, but decays
    assert lw.count.tolist() == [0.25]
    np.testing.assert_allclose(lw.cov[0], 0.25 * np.array([[1.0, 2.0], [2.0, 4.0]]))


def test_pending_forecasts_are_scored_once_per_target_at_their_lead():
    step = 3600 * 10**9
    pending = PendingForecasts(step_ns=step)
    pending.add(10 * step, np.array([[100.0, 110.0, 120.0], [90.0, 100.0, 100.0]]))
    (leads, errors), = pending.score(np.array([10 * step, 11 * step]), np.array([100.0, 100.0]))
    assert leads.tolist() == [0, 1]
    np.testing.assert_allclose(errors, [[0.0, -0.1], [0.1, 0.0]])
    assert pending.score(np.array([11 * step]), np.array([50.0])) == []  # already scored
    (leads, errors), = pending.score(np.array([12 * step]), np.array([200.0]))
    assert leads.tolist() == [2] and not pending.records  # all scored: dropped
