"""LSTM training (issue 16): intervals scaled by the forecast temperature, weight averaging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.data.synthetic import generate
from gridcast.features import COOLING_BASE_C, HEATING_BASE_C
from gridcast.models.base import Forecaster
from gridcast.models.lstm import LSTMForecaster
from gridcast.models.lstm_features import interval_scale
from gridcast.models.lstm_training import SCALE_SLOPES, _scale_slopes
from gridcast.schema import TEMPERATURE, region_frame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df, _ = generate(days=90, regions=1, seed=5)
    return region_frame(df, "region-1")


@pytest.fixture(scope="module")
def fitted(frame: pd.DataFrame) -> LSTMForecaster:
    return LSTMForecaster(quick=True, verbose=0, seed=1, epochs=4).fit(frame)


def _future(frame: pd.DataFrame, temp: float, steps: int = 24) -> pd.DataFrame:
    index = pd.date_range(frame.index[-1] + pd.Timedelta("1h"), periods=steps, freq="1h", tz="UTC")
    return pd.DataFrame({TEMPERATURE: np.full(steps, temp)}, index=index)


def test_interval_scale_is_one_in_mild_weather_and_grows_with_heating_and_cooling_degrees() -> None:
    temps = np.array([[HEATING_BASE_C, COOLING_BASE_C, 19.0, np.nan, HEATING_BASE_C - 10, COOLING_BASE_C + 5]])
    assert np.array_equal(interval_scale(temps, (0.0, 0.0)), np.ones_like(temps))
    np.testing.assert_allclose(interval_scale(temps, (2.0, 1.0)), [[1.0, 1.0, 1.0, 1.0, 3.0, 1.5]])
    np.testing.assert_allclose(interval_scale(temps, (0.0, 2.0)), [[1.0, 1.0, 1.0, 1.0, 1.0, 2.0]])


def test_the_slopes_follow_residuals_that_spread_with_heat_but_not_cold() -> None:
    rng = np.random.default_rng(0)
    temps = rng.uniform(0.0, 40.0, (3000, 24))
    spread = rng.normal(0.0, 0.02, temps.shape) * interval_scale(temps, (0.0, 1.0))
    heating, cooling = _scale_slopes(spread, temps)
    assert heating == 0.0 and cooling in (0.5, 1.0, 2.0)
    assert _scale_slopes(rng.normal(0.0, 0.02, temps.shape), temps) == (0.0, 0.0)
    assert set(SCALE_SLOPES) >= {0.0, 1.0}


def test_a_fitted_model_records_its_slope_and_widens_its_intervals_in_the_heat(fitted, frame, tmp_path) -> None:
    assert set(fitted.quantiles_["weather_scale"]) <= set(SCALE_SLOPES)
    fitted.quantiles_["weather_scale"] = np.array([0.0, 1.0])
    fitted._reset_caches()
    mild = fitted.predict(24, future_covariates=_future(frame, 19.0), level=(90,))
    hot = fitted.predict(24, future_covariates=_future(frame, COOLING_BASE_C + 10.0), level=(90,))
    # relative widths: twice as wide with 10 cooling degrees and a cooling slope of 1
    # (unless the mean is outside the interval's quantile, where it is clipped)
    rel_mild = (mild["hi-90"] - mild["lo-90"]) / mild["mean"]
    rel_hot = (hot["hi-90"] - hot["lo-90"]) / hot["mean"]
    np.testing.assert_allclose(rel_hot.to_numpy(), 2.0 * rel_mild.to_numpy(), rtol=1e-6)
    # the slope travels with the saved model
    fitted.save(tmp_path / "m")
    loaded = Forecaster.load(tmp_path / "m")
    assert list(loaded.quantiles_["weather_scale"]) == [0.0, 1.0]
    again = loaded.predict(24, future_covariates=_future(frame, COOLING_BASE_C + 10.0), level=(90,))
    pd.testing.assert_frame_equal(again, hot)


def test_a_model_without_a_slope_keeps_its_intervals(fitted, frame) -> None:
    """A model saved before the scaling has no ``weather_scale``: its intervals are unscaled."""
    future = _future(frame, COOLING_BASE_C + 10.0)
    fitted.quantiles_["weather_scale"] = np.array([0.0, 0.0])
    fitted._reset_caches()
    unscaled = fitted.predict(24, future_covariates=future, level=(80, 95))
    del fitted.quantiles_["weather_scale"]
    fitted._reset_caches()
    legacy = fitted.predict(24, future_covariates=future, level=(80, 95))
    pd.testing.assert_frame_equal(legacy, unscaled)


def test_training_ends_on_the_moving_average_of_the_weights(frame) -> None:
    # the refit on all windows (no early stopping to restore an earlier epoch) is what is saved
    model = LSTMForecaster(quick=True, verbose=0, seed=2, epochs=2, ema_momentum=0.9)
    model.fit(frame)
    optimizer = model.model_.optimizer
    assert optimizer.use_ema
    averages = {v.path: np.asarray(a) for v, a in zip(optimizer._trainable_variables,
                                                      optimizer._model_variables_moving_average, strict=True)}
    for v in model.model_.trainable_variables:
        np.testing.assert_array_equal(np.asarray(v), averages[v.path])
    plain = LSTMForecaster(quick=True, verbose=0, seed=2, epochs=2, ema_momentum=0.0).fit(frame)
    assert not plain.model_.optimizer.use_ema
