"""The seasonal naive's intervals: conformal quantiles of its own relative seasonal differences.

Real models on the seeded synthetic series, the backtest's day-ahead loop (forecast 36 h
at 12:00 UTC, score the next day; refitted weekly, updated daily). The comparison is the
same model with ``calibration_weeks=0``: the normal ``± z·σ`` intervals it served before.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gridcast.models.base import Forecaster, SeasonalNaive, profile_fallback
from gridcast.schema import LOAD, region_frame
from gridcast.series import Series
from training.data.synthetic import generate

LEVELS = (80, 90, 95)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df, _ = generate(days=400, seed=1)
    return region_frame(df, "region-1")


def coverage(frame: pd.DataFrame, calibration_weeks: int, days: int = 118) -> dict[int, float]:
    hits: dict[int, list[np.ndarray]] = {lv: [] for lv in LEVELS}
    start = len(frame) - 24 * (days + 2) + (12 - frame.index[0].hour) % 24
    for d in range(days):
        o = start + 24 * d
        if d % 7 == 0:
            model = SeasonalNaive(calibration_weeks=calibration_weeks).fit(frame.iloc[:o])
        else:
            model.update(frame.iloc[o - 24:o])
        fc = model.predict(36, level=LEVELS).iloc[12:36]
        y = frame[LOAD].iloc[o + 12:o + 36].to_numpy(float)
        for lv in LEVELS:
            hits[lv].append((y >= fc[f"lo-{lv}"].to_numpy()) & (y <= fc[f"hi-{lv}"].to_numpy()))
    return {lv: float(np.concatenate(h).mean() * 100) for lv, h in hits.items()}


def test_calibrated_intervals_cover_closer_to_nominal_than_the_normal_sigma(frame):
    calibrated, normal = coverage(frame, 26), coverage(frame, 0)
    for lv in LEVELS:
        assert abs(calibrated[lv] - lv) < abs(normal[lv] - lv), (lv, calibrated, normal)
    assert 86 <= calibrated[90] <= 95


def test_bounds_are_nested_around_the_mean_and_widen_by_sqrt_seasons(frame):
    model = SeasonalNaive().fit(frame)
    assert model.quantiles_ is not None
    fc = model.predict(2 * 168, level=(37, 80, 90, 95, 99))
    mean = fc["mean"].to_numpy()
    lo_prev, hi_prev = mean, mean
    for lv in (37, 80, 90, 95, 99):
        lo, hi = fc[f"lo-{lv}"].to_numpy(), fc[f"hi-{lv}"].to_numpy()
        assert (lo < lo_prev).all() and (hi > hi_prev).all()
        lo_prev, hi_prev = lo, hi
    # relative half-width: q(90) times the online scale of the lead's band, times sqrt(seasons ahead)
    rel = ((fc["hi-90"] - fc["mean"]) / fc["mean"]).to_numpy() / model.online_.scale(2 * 168)
    np.testing.assert_allclose(rel[:168], rel[0])
    np.testing.assert_allclose(rel[168:], rel[0] * np.sqrt(2))


def test_save_load_is_exact_and_a_model_saved_before_keeps_its_normal_intervals(frame, tmp_path):
    model = SeasonalNaive().fit(frame)
    before = model.predict(48, level=LEVELS)
    model.save(tmp_path / "new")
    pd.testing.assert_frame_equal(Forecaster.load(tmp_path / "new").predict(48, level=LEVELS), before,
                                  check_exact=True, check_freq=False)
    # a naive saved before the calibration: no quantiles in its state, no calibration_weeks in its params
    meta_file = (tmp_path / "new" / "forecaster.json")
    meta = json.loads(meta_file.read_text())
    del meta["state"]["quantiles_"], meta["params"]["calibration_weeks"]
    meta_file.write_text(json.dumps(meta))
    old = Forecaster.load(tmp_path / "new")
    assert old.quantiles_ is None
    normal = SeasonalNaive(calibration_weeks=0).fit(frame).predict(48, level=LEVELS)
    pd.testing.assert_frame_equal(old.predict(48, level=LEVELS), normal, check_exact=True, check_freq=False)
    assert not np.allclose(normal["hi-90"], before["hi-90"])


def test_under_four_weeks_of_differences_the_normal_sigma_stays_as_the_profile_fallbacks(frame):
    short = frame.iloc[-24 * 34:]  # 34 days: 27 days of weekly differences
    model = SeasonalNaive().fit(short)
    assert model.quantiles_ is None
    fc = model.predict(24, level=(90,))
    ref = profile_fallback(Series.from_frame(short[[LOAD]].astype(float)), horizon=24, level=(90,))
    np.testing.assert_allclose(fc["hi-90"].to_numpy(), ref.upper[90])
    assert SeasonalNaive().fit(frame.iloc[-24 * 35:]).quantiles_ is not None  # 28 days: calibrated


def _with_recent_errors(frame: pd.DataFrame, factor: float, days: int = 28) -> pd.DataFrame:
    """``frame`` with the last ``days`` days' deviations from the weekly profile scaled by ``factor``."""
    out = frame.copy()
    y = out[LOAD].to_numpy(float).copy()
    tail = slice(len(y) - 24 * days, len(y))
    before = np.arange(tail.start - 8 * 168, tail.start)  # the weekly profile of the 8 weeks before
    profile = pd.Series(y[before]).groupby(before % 168).mean().to_numpy()
    base = profile[np.arange(tail.start, len(y)) % 168]
    y[tail] = base + factor * (y[tail] - base)
    out[LOAD] = y
    return out


def test_a_fit_replays_the_recent_days_so_the_scale_follows_the_errors_just_seen(frame):
    """Recent errors larger than the calibration window's widen the intervals at once; smaller ones narrow them."""
    calm, stormy = _with_recent_errors(frame, 0.3), _with_recent_errors(frame, 3.0)
    scale = {name: SeasonalNaive().fit(f).online_.scale(48) for name, f in
             (("calm", calm), ("as is", frame), ("stormy", stormy))}
    assert (scale["stormy"] > scale["as is"]).all() and (scale["as is"] >= scale["calm"]).all(), scale
    assert scale["calm"].mean() < scale["as is"].mean() < 1 < scale["stormy"].mean(), scale
    # without replay: the fit-time quantiles as they are
    assert (SeasonalNaive(replay_days=0).fit(stormy).online_.scale(48) == 1.0).all()
    served = SeasonalNaive().fit(stormy).predict(24, level=(90,))
    plain = SeasonalNaive(replay_days=0).fit(stormy).predict(24, level=(90,))
    np.testing.assert_allclose(served["hi-90"] - served["mean"],
                               (plain["hi-90"] - plain["mean"]) * scale["stormy"][:24])


def test_update_scores_the_forecasts_from_its_own_state_and_moves_the_scale(frame):
    """Actuals far outside the served intervals widen the next ones; a forecast for a client's history is not scored."""
    model, untouched = SeasonalNaive().fit(frame.iloc[:-48]), SeasonalNaive().fit(frame.iloc[:-48])
    model.predict(48, history=frame.iloc[:-48])  # a client's history: not remembered
    model.update(frame.iloc[-48:-24])
    untouched.update(frame.iloc[-48:-24])  # (the last replayed day's forecast is scored by both)
    np.testing.assert_array_equal(model.online_.scale(48), untouched.online_.scale(48))
    before = model.online_.scale(48).copy()
    fc = model.predict(24, level=(90,))  # from its own state: remembered
    actual = frame.iloc[-24:].copy()
    actual[LOAD] = fc["hi-90"].to_numpy() * 1.5  # every target missed
    model.update(actual)
    after = model.online_.scale(48)
    assert (after[:24] > before[:24]).all() and (after[24:] == before[24:]).all()


def test_the_online_scale_is_saved_exactly(frame, tmp_path):
    model = SeasonalNaive().fit(frame.iloc[:-24])
    fc = model.predict(24, level=(90,))
    actual = frame.iloc[-24:].copy()
    actual[LOAD] = fc["lo-90"].to_numpy() * 0.5
    model.update(actual)
    model.save(tmp_path / "m")
    loaded = Forecaster.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.online_.log_scale, model.online_.log_scale)
    pd.testing.assert_frame_equal(loaded.predict(48, level=LEVELS), model.predict(48, level=LEVELS),
                                  check_exact=True, check_freq=False)
