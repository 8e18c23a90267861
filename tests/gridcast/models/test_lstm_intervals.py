"""The LSTM's online interval calibration: its own day-ahead errors, as ``update`` brings actuals.

One quick model (seconds) per module; each test works on a loaded copy, driven the way
the backtest and the service drive it (forecast from the model's state, then absorb the
actuals). Nothing of the calibration is mocked.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gridcast.models.base import Forecaster
from gridcast.models.lstm import ARRAYS_FILE, LSTMForecaster
from gridcast.schema import LOAD, TEMPERATURE, region_frame
from training.data.synthetic import generate

pytestmark = pytest.mark.slow

TEST_DAYS = 21


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df, _ = generate(days=120, regions=1, seed=11)
    return region_frame(df, "region-1")


@pytest.fixture(scope="module")
def saved(frame, tmp_path_factory):
    model = LSTMForecaster(quick=True, verbose=0, seed=3).fit(frame.iloc[:-24 * (TEST_DAYS + 2)])
    return model.save(tmp_path_factory.mktemp("lstm") / "m")


def fresh(saved) -> LSTMForecaster:
    return Forecaster.load(saved)


def day_ahead(model: LSTMForecaster, frame: pd.DataFrame, days: int, *, weather_error_c: float = 0.0,
              exact: bool = False) -> list[pd.DataFrame]:
    """``days`` times: forecast 36 steps from the model's state, then absorb the next 24 actuals.

    ``weather_error_c``: the forecast temperature's error (seeded); ``exact``: the actuals
    absorbed equal the forecast's mean (a model that never errs).
    """
    rng = np.random.default_rng(0)
    out = []
    start = frame.index.get_loc(model.context_.index[-1]) + 1
    for d in range(days):
        o = start + 24 * d
        future = frame.iloc[o:o + 36][[TEMPERATURE]].copy()
        future[TEMPERATURE] += weather_error_c * rng.standard_normal(len(future))
        fc = model.predict(36, future_covariates=future, level=(90,))
        out.append(fc)
        rows = frame.iloc[o:o + 24].copy()
        if exact:
            rows[LOAD] = fc["mean"].iloc[:24].to_numpy()
        model.update(rows)
    return out


def width(fc: pd.DataFrame) -> float:
    return float(((fc["hi-90"] - fc["lo-90"]) / fc["mean"]).mean())


def test_a_model_fed_a_worse_weather_forecast_widens_its_intervals(saved, frame):
    model = fresh(saved)
    fcs = day_ahead(model, frame, TEST_DAYS, weather_error_c=8.0)
    assert model.online_.log_scale.max() > 0  # the served intervals missed more than one target in ten
    # the fit-time intervals (first forecast) hold a weather error of about 1 °C, not 8
    assert width(fcs[-1]) > 1.2 * width(fcs[0])
    # and the intervals at the end cover the errors the model now makes better than at the start
    actual = frame[LOAD]
    def coverage(fc):
        y = actual.reindex(fc.index)
        return float(((y >= fc["lo-90"]) & (y <= fc["hi-90"])).mean())
    assert np.mean([coverage(f) for f in fcs[-5:]]) >= np.mean([coverage(f) for f in fcs[:5]])


def test_a_model_that_never_errs_narrows_its_intervals(saved, frame):
    model = fresh(saved)
    first = model.predict(24, level=(90,))
    day_ahead(model, frame, 6, exact=True)
    after = model.predict(24, level=(90,))
    # every served interval covered: the scales of those leads shrink
    assert (model.online_.log_scale[:4] < 0).all()  # leads 0-23: every target scored was covered
    assert width(after) < 0.97 * width(first)


def test_the_calibration_moves_the_bounds_never_the_mean_and_ignores_request_histories(saved, frame):
    model = fresh(saved)
    cut = frame.index.get_loc(model.context_.index[-1]) + 1
    model.predict(24, history=frame.iloc[:cut])  # a request's own history: not the model's forecast
    assert not model.online_.pending.records
    day_ahead(model, frame, 6, weather_error_c=8.0)
    history = frame.iloc[:cut + 24 * 6]
    future = frame.iloc[cut + 24 * 6:cut + 24 * 6 + 36][[TEMPERATURE]]
    got = model.predict(36, future_covariates=future, level=(90,), history=history)
    before = fresh(saved).predict(36, future_covariates=future, level=(90,), history=history)
    np.testing.assert_array_equal(got["mean"].to_numpy(), before["mean"].to_numpy())
    assert width(got) > width(before)


def test_the_online_state_survives_save_and_load_exactly(saved, frame, tmp_path):
    model = fresh(saved)
    day_ahead(model, frame, 8, weather_error_c=4.0)
    assert model.online_.log_scale.any()
    loaded = Forecaster.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.online_.log_scale, model.online_.log_scale)
    future = frame.iloc[-40:-4][[TEMPERATURE]]
    history = frame.iloc[:frame.index.get_loc(model.context_.index[-1]) + 1]
    pd.testing.assert_frame_equal(loaded.predict(36, future_covariates=future, history=history),
                                  model.predict(36, future_covariates=future, history=history), check_exact=True)
    meta = json.loads((tmp_path / "m" / "forecaster.json").read_text())
    assert meta["format_version"] == 2
    assert len(meta["state"]["online_calibration"]["interval_scale"]) == len(model.online_.log_scale)


def test_a_model_saved_before_the_online_calibration_serves_its_fit_time_intervals(saved, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(saved, old)
    with np.load(old / ARRAYS_FILE) as z:
        kept = {k: z[k] for k in z.files if k.startswith("q_")}
    np.savez(old / ARRAYS_FILE, **kept)
    meta = json.loads((old / "forecaster.json").read_text())
    meta["format_version"] = 1
    del meta["state"]["online_calibration"]
    (old / "forecaster.json").write_text(json.dumps(meta))
    loaded = Forecaster.load(old)
    assert not loaded.online_.log_scale.any()
    pd.testing.assert_frame_equal(loaded.predict(24, level=(80, 95)), fresh(saved).predict(24, level=(80, 95)),
                                  check_exact=True)
