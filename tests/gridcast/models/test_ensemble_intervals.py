"""The ensemble's intervals, calibrated on the combination's own out-of-sample errors.

Members: the weekly seasonal naive and a daily one (``DailyNaive``, registered for the
module): real models whose errors are partly independent, so their combination errs
less than either — the case where the weighted average of the members' bounds
over-covers. The loop is the backtest's day-ahead one (forecast 36 h at 12:00, score
the next day, absorb a day of actuals). Nothing of the ensemble is mocked.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gridcast.models.base import REGISTRY, Forecaster, SeasonalNaive
from gridcast.models.conformal import ScoreWindow
from gridcast.models.ensemble import WEIGHTS_FILE, EnsembleForecaster
from gridcast.schema import LOAD, region_frame
from training.data.synthetic import generate

TEST_DAYS = 60


class DailyNaive(SeasonalNaive):
    """Same step yesterday: the second member."""

    alias = "daily"

    def __init__(self) -> None:
        super().__init__(season_days=1)
        self.params = {}


@pytest.fixture(autouse=True)
def daily_registered(monkeypatch):
    monkeypatch.setitem(REGISTRY, "daily", f"{__name__}:DailyNaive")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df, _ = generate(days=180, seed=5)
    return region_frame(df, "region-1")


def cut_of(frame: pd.DataFrame) -> int:
    """The first test step: 12:00 UTC, ``TEST_DAYS`` + 2 days before the end."""
    return len(frame) - 24 * (TEST_DAYS + 2) + (12 - frame.index[0].hour) % 24


def day_ahead(ens: EnsembleForecaster, frame: pd.DataFrame, start: int, days: int,
              level: int = 90) -> tuple[np.ndarray, np.ndarray]:
    """Per scored step of each day: covered or not, and the interval's relative width."""
    hits, widths = [], []
    for d in range(days):
        o = start + 24 * d
        fc = ens.predict(36, level=(level,)).iloc[12:36]
        y = frame[LOAD].iloc[o + 12:o + 36].to_numpy(float)
        lo, hi = fc[f"lo-{level}"].to_numpy(), fc[f"hi-{level}"].to_numpy()
        hits.append((y >= lo) & (y <= hi))
        widths.append((hi - lo) / fc["mean"].to_numpy())
        ens.update(frame.iloc[o:o + 24])
    return np.concatenate(hits), np.concatenate(widths)


def fitted(frame: pd.DataFrame, **kw) -> EnsembleForecaster:
    return EnsembleForecaster(members=["naive", "daily"], val_days=14, **kw).fit(frame.iloc[:cut_of(frame)])


def test_calibrated_coverage_is_near_nominal_where_the_members_bounds_over_cover(frame):
    cut = cut_of(frame)
    calibrated = fitted(frame)
    # the same ensemble serving its members' weighted bounds (it never has enough scores)
    members_bounds = fitted(frame, min_calibration_scores=10**9)
    assert calibrated.calibration_ is not None and members_bounds.calibration_ is None
    hits, _ = day_ahead(calibrated, frame, cut, TEST_DAYS)
    old, _ = day_ahead(members_bounds, frame, cut, TEST_DAYS)
    assert len(hits) == 24 * TEST_DAYS
    assert old.mean() > 0.97
    assert 0.86 <= hits.mean() <= 0.94
    # the validation record: leave-one-day-out coverage of the calibrated intervals, and the old one
    assert 80 <= calibrated.validation_["coverage_90"] <= 97
    assert calibrated.validation_["coverage_90_member_bounds"] > 97
    # the mean is the same combination either way
    assert calibrated.validation_["mape"] == members_bounds.validation_["mape"]


def test_intervals_are_nested_around_the_mean_and_exact_through_save_load(frame, tmp_path):
    cut = cut_of(frame)
    ens = fitted(frame)
    day_ahead(ens, frame, cut, 10)  # online scores in the window
    ens.predict(36, level=(90,))  # a pending forecast: not saved, must not matter
    levels = (37, 80, 90, 95, 99)
    before = ens.predict(48, level=levels)
    mean = before["mean"].to_numpy()
    previous_lo, previous_hi = mean, mean
    for lv in levels:
        lo, hi = before[f"lo-{lv}"].to_numpy(), before[f"hi-{lv}"].to_numpy()
        assert (lo <= previous_lo).all() and (hi >= previous_hi).all()
        previous_lo, previous_hi = lo, hi
    assert (before["lo-90"] < before["mean"]).all() and (before["hi-90"] > before["mean"]).all()
    ens.save(tmp_path / "ens")
    loaded = Forecaster.load(tmp_path / "ens")
    pd.testing.assert_frame_equal(loaded.predict(48, level=levels), before, check_exact=True, check_freq=False)
    np.testing.assert_array_equal(loaded.window_.scores, ens.window_.scores)
    np.testing.assert_array_equal(loaded.window_.times, ens.window_.times)
    assert loaded.log_scale_ == ens.log_scale_ != 0.0


def test_the_interval_widens_online_when_the_errors_grow(frame):
    cut = cut_of(frame)
    ens = fitted(frame, calibration_days=14)
    _, calm = day_ahead(ens, frame, cut, 14)
    # from now on the load carries 15 % noise of its own: every member errs more
    rng = np.random.default_rng(0)
    stormy = frame.copy()
    stormy.iloc[cut + 24 * 14:, stormy.columns.get_loc(LOAD)] *= 1 + 0.15 * rng.standard_normal(len(frame) - cut - 24 * 14)
    day_ahead(ens, stormy, cut + 24 * 14, 14)  # the window fills with the new errors
    hits, wide = day_ahead(ens, stormy, cut + 24 * 28, 14)
    assert np.median(wide) > 1.5 * np.median(calm)
    assert hits.mean() >= 0.85


def test_without_calibration_scores_it_serves_the_members_weighted_bounds(frame, tmp_path):
    ens = fitted(frame)
    ens.save(tmp_path / "ens")
    # drop the scores from the saved file: a model saved without them (format 2's layout)
    path = tmp_path / "ens" / WEIGHTS_FILE
    with np.load(path) as z:
        kept = {k: z[k] for k in z.files if not k.startswith("calibration_")}
    np.savez(path, **kept)
    meta_path = tmp_path / "ens" / "forecaster.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 2  # as format 2 wrote it: still read
    meta_path.write_text(json.dumps(meta))
    loaded = Forecaster.load(tmp_path / "ens")
    assert loaded.calibration_ is None
    fc = loaded.predict(36, level=(90,))
    members = {m: model.predict(36, level=(90,)) for m, model in loaded.members_.items()}
    w = loaded.lead_weights_[:36]
    expected = sum(w[:, [k]] * members[m][["mean", "lo-90", "hi-90"]].to_numpy()
                   for k, m in enumerate(loaded.members))
    np.testing.assert_allclose(fc[["mean", "lo-90", "hi-90"]].to_numpy(), expected, rtol=1e-12)
    assert not np.allclose(ens.predict(36, level=(90,))["lo-90"], fc["lo-90"])


def test_score_window_keeps_the_last_days_only():
    day = 86400 * 10**9
    w = ScoreWindow(window_ns=2 * day)
    w.add(np.array([0, day, 2 * day]), np.array([0, 1, 2]), np.array([1.0, 2.0, np.nan]))
    assert w.scores.tolist() == [1.0, 2.0]  # the NaN skipped
    w.add(np.full(2, 3 * day - 1), np.array([0, 5]), np.array([3.0, 4.0]))
    assert w.scores.tolist() == [2.0, 3.0, 4.0]  # the score at 0 is more than 2 days before the newest
    m = w.matrix(3)  # lead 5 counts as the last lead
    assert m.shape == (3, 1) and m[:, 0].tolist() == [3.0, 2.0, 4.0]
    w.add(np.array([3 * day]), np.array([0]), np.array([5.0]))
    assert w.scores.tolist() == [3.0, 4.0, 5.0]
    # no band with 4 scores: no calibration; a band short of scores borrows from the nearest one
    assert w.quantiles(4, band=2, min_count=4) is None
    cal = w.quantiles(4, band=2, min_count=2)
    assert cal.counts.tolist() == [2, 0]
    np.testing.assert_array_equal(cal.table[1], cal.table[0])
    assert cal.quantile(50, 4)[3] == 5.0


def test_online_scale_widens_after_misses_and_narrows_while_covered(frame):
    cut = cut_of(frame)
    ens = fitted(frame)
    ens.update(frame.iloc[cut:cut + 24])  # nothing was forecast: nothing scored, the scale stays
    assert ens.log_scale_ == 0.0
    ens.predict(24, level=(50,))  # replaced by the next forecast from the same origin
    base = ens.predict(24, level=(90,))
    # actuals far outside the served 90 % interval: 24 misses
    rows = frame.iloc[cut + 24:cut + 48].copy()
    rows[LOAD] = base["hi-90"].iloc[:24].to_numpy() * 1.5
    ens.update(rows)
    assert ens.log_scale_ == pytest.approx(ens.adapt_rate * 24 * 0.9)
    # then actuals equal to the mean: covered, the scale shrinks by a tenth of the step each
    fc = ens.predict(24, level=(90,))
    rows = frame.iloc[cut + 48:cut + 72].copy()
    rows[LOAD] = fc["mean"].to_numpy()
    before = ens.log_scale_
    ens.update(rows)
    assert ens.log_scale_ == pytest.approx(before - ens.adapt_rate * 24 * 0.1)
