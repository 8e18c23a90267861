"""SARIMAX's calibrated intervals: the conformal arithmetic, coverage near nominal, exact persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridcast.models.base import Forecaster
from gridcast.models.conformal import LeadQuantiles, conformal_quantile
from gridcast.models.sarimax import SarimaxForecaster

PARAMS = {"window_weeks": 5, "maxiter": 10, "country": "VN", "tz": "Asia/Ho_Chi_Minh"}


def test_conformal_quantile_is_the_corrected_rank():
    scores = np.arange(1.0, 20.0)  # 19 scores: rank ceil(20 * 0.9) = 18
    assert conformal_quantile(scores, 90) == 18.0
    assert conformal_quantile(scores, 99.5) == 19.0  # past n: the largest
    assert np.isnan(conformal_quantile(np.array([np.nan]), 90))


def test_lead_quantiles_of_gaussian_scores_are_the_normal_quantiles():
    rng = np.random.default_rng(1)
    scores = np.abs(rng.standard_normal((8, 4000))) * np.repeat([1.0, 2.0], 4)[:, None]  # 2nd band twice as wide
    cal = LeadQuantiles.from_scores(scores, band=4)
    q = cal.quantile(90, horizon=10)
    assert q[:4] == pytest.approx(np.full(4, 1.645), abs=0.05)
    assert q[4:] == pytest.approx(np.full(6, 2 * 1.645), abs=0.1)  # leads past the last band use it


def test_calibrated_coverage_is_near_nominal_and_survives_save_load(region_history, tmp_path):
    """Day-ahead forecasts over the last two weeks (the model updated daily, refitted weekly)."""
    covered, widths = [], []
    for week in (2, 1):
        cut = len(region_history) - 24 * 7 * week - 12
        model = SarimaxForecaster(**PARAMS).fit(region_history.iloc[:cut])
        assert model.calibration_ is not None
        for d in range(7):
            o = cut + 24 * d
            if d:
                model.update(region_history.iloc[o - 24:o])
            future = region_history.iloc[o:o + 36]
            fc = model.predict(36, future_covariates=future[["temperature_c"]], level=(90,)).iloc[12:]
            y = future["load_mw"].to_numpy()[12:]
            covered.append((y >= fc["lo-90"].to_numpy()) & (y <= fc["hi-90"].to_numpy()))
            widths.append((fc["hi-90"] - fc["lo-90"]).to_numpy())
    coverage = float(np.mean(covered)) * 100
    assert 80.0 <= coverage <= 98.0, coverage  # 336 correlated points: a loose band that still fails
    saved = Forecaster.load(model.save(tmp_path / "s"))
    pd.testing.assert_frame_equal(saved.predict(36, level=(80, 90)), model.predict(36, level=(80, 90)),
                                  check_exact=True, check_freq=False, check_index_type=False)
    np.testing.assert_array_equal(saved.calibration_.table, model.calibration_.table)


def test_calibration_off_gives_the_state_space_intervals(region_history):
    train = region_history.iloc[: -24 * 7]
    native = SarimaxForecaster(**PARAMS, calibrate_days=0).fit(train)
    assert native.calibration_ is None
    fc = native.predict(24, level=(90,))
    band = native.results_.get_forecast(24, exog=native._design(fc.index, native._weather_frame(
        fc.index, None, native.temp_tail_))).conf_int(alpha=0.1)
    np.testing.assert_allclose(fc["lo-90"].to_numpy(), np.asarray(band)[:, 0])
