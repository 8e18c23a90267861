"""LSTMForecaster: the model contract on seeded synthetic data (quick settings).

One quick model is trained per module (seconds) and shared by the tests; each test
checks one contract property against independently computed values.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from training.data.synthetic import generate
from gridcast.errors import InsufficientDataError, UserInputError
from gridcast.models.base import ForecastRequest, SeasonalNaive
from gridcast.models.lstm import LSTMForecaster
from gridcast.schema import LOAD, TEMPERATURE, region_frame

pytestmark = pytest.mark.slow

HOLDOUT = 14 * 24


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """120 days, one region: enough windows for a quick fit to learn the weather response."""
    df, _ = generate(days=120, regions=1, seed=11)
    return region_frame(df, "region-1")


@pytest.fixture(scope="module")
def fitted(frame: pd.DataFrame) -> LSTMForecaster:
    return LSTMForecaster(quick=True, verbose=0, seed=3).fit(frame.iloc[:-HOLDOUT])


def _mape(actual: pd.Series, forecast: pd.Series) -> float:
    return float((100 * (actual - forecast).abs() / actual).mean())


def test_shapes_index_and_columns(fitted: LSTMForecaster, frame: pd.DataFrame) -> None:
    fc = fitted.predict(36, level=(80, 95))
    last = frame.index[-HOLDOUT - 1]
    expected = pd.date_range(last + pd.Timedelta("1h"), periods=36, freq="1h", tz="UTC")
    assert fc.index.equals(expected)
    assert list(fc.columns) == ["mean", "lo-80", "hi-80", "lo-95", "hi-95"]
    assert np.isfinite(fc.to_numpy()).all()


def test_intervals_are_nested_around_the_mean(fitted: LSTMForecaster, frame: pd.DataFrame) -> None:
    future = frame.iloc[-HOLDOUT:][[TEMPERATURE]]
    fc = fitted.predict(168, future_covariates=future, level=(50, 80, 95))
    assert (fc["lo-95"] <= fc["lo-80"]).all() and (fc["lo-80"] <= fc["lo-50"]).all()
    assert (fc["lo-50"] <= fc["mean"]).all() and (fc["mean"] <= fc["hi-50"]).all()
    assert (fc["hi-50"] <= fc["hi-80"]).all() and (fc["hi-80"] <= fc["hi-95"]).all()
    assert (fc["hi-95"] - fc["lo-95"]).mean() > 0


def test_beats_seasonal_naive_day_ahead(fitted: LSTMForecaster, frame: pd.DataFrame) -> None:
    naive = SeasonalNaive().fit(frame.iloc[:-HOLDOUT])
    lstm_err, naive_err = [], []
    for day in range(HOLDOUT // 24):
        cut = len(frame) - HOLDOUT + 24 * day
        history, target = frame.iloc[:cut], frame.iloc[cut:cut + 24]
        fc = fitted.predict(24, future_covariates=target[[TEMPERATURE]], history=history)
        lstm_err.append(_mape(target[LOAD], fc["mean"]))
        naive_err.append(_mape(target[LOAD], naive.predict(24, history=history)["mean"]))
    assert np.mean(lstm_err) < np.mean(naive_err), (np.mean(lstm_err), np.mean(naive_err))


def test_predict_batch_equals_each_predict(fitted: LSTMForecaster, frame: pd.DataFrame) -> None:
    cut = len(frame) - HOLDOUT
    requests = [
        ForecastRequest(id="ctx", horizon=24),
        ForecastRequest(id="hist", horizon=48, level=(90,), history=frame.iloc[:cut + 5]),
        ForecastRequest(id="weather", horizon=168, history=frame.iloc[:cut + 30],
                        future_covariates=frame.iloc[cut + 30:][[TEMPERATURE]]),
    ]
    batch = fitted.predict_batch(requests)
    assert set(batch) == {"ctx", "hist", "weather"}
    for r in requests:
        single = fitted.predict(r.horizon, r.future_covariates, r.level, history=r.history)
        pd.testing.assert_frame_equal(batch[r.id], single, rtol=1e-5)


def test_forward_on_the_steps_asked_for_equals_the_whole_head(fitted: LSTMForecaster) -> None:
    """``leads`` computes each sample's first steps with the same arithmetic, and no others."""
    from gridcast.models.lstm_net import forward

    w = fitted._net_weights()
    rng = np.random.default_rng(3)
    b, H = 5, fitted.H_
    steps = fitted.params["input_days"]
    enc = rng.normal(size=(b, steps, w["lstm/0"].shape[0])).astype(np.float32)
    n_dec = w["head_1/0"].shape[0] - w["context/0"].shape[1] - w["lead_context/0"].shape[1] // H
    dec = rng.normal(size=(b, H, n_dec)).astype(np.float32)
    base = rng.normal(size=(b, H)).astype(np.float32)
    full = forward(w, enc, dec, base)
    leads = np.array([1, H, 7, 0, H // 2])
    part = forward(w, enc, dec, base, leads)
    for i, n in enumerate(leads):
        np.testing.assert_allclose(part[i, :n], full[i, :n], rtol=1e-6, atol=1e-7)
        assert np.isnan(part[i, n:]).all()


def _random_inputs(fitted: LSTMForecaster, b: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = fitted._net_weights()
    H, steps = fitted.H_, fitted.params["input_days"]
    rng = np.random.default_rng(seed)
    n_dec = w["head_1/0"].shape[0] - w["context/0"].shape[1] - w["lead_context/0"].shape[1] // H
    return (rng.normal(size=(b, steps, w["lstm/0"].shape[0])).astype(np.float32),
            rng.normal(size=(b, H, n_dec)).astype(np.float32), rng.normal(size=(b, H)).astype(np.float32))


def test_a_sample_gets_the_same_output_whatever_shares_its_batch(fitted: LSTMForecaster) -> None:
    """Alone, or in batches of 2, 5 and 40 at any position: equal to 1e-12 (float32 BLAS varied by 1e-6)."""
    from gridcast.models.lstm_net import forward

    w = fitted._net_weights()
    enc, dec, base = _random_inputs(fitted, 40, seed=4)
    leads = np.random.default_rng(5).choice([1, 6, 24, 48, fitted.H_], size=40)
    whole = forward(w, enc, dec, base, leads)
    for lo, hi in [(0, 2), (3, 8), (17, 40)]:
        part = forward(w, enc[lo:hi], dec[lo:hi], base[lo:hi], leads[lo:hi])
        np.testing.assert_allclose(part, whole[lo:hi], rtol=0, atol=1e-12)
    for i in (0, 9, 39):
        alone = forward(w, enc[i:i + 1], dec[i:i + 1], base[i:i + 1], leads[i:i + 1])
        np.testing.assert_allclose(alone[0], whole[i], rtol=0, atol=1e-12)


def test_the_numpy_forward_pass_is_the_keras_network(fitted: LSTMForecaster) -> None:
    """Serving's forward pass (float64) computes what the trained Keras model (float32) does."""
    from gridcast.models.lstm_net import forward

    enc, dec, base = _random_inputs(fitted, 6, seed=6)
    keras_out = np.asarray(fitted.model_([enc, dec, base], training=False), dtype=np.float64)
    np.testing.assert_allclose(forward(fitted._net_weights(), enc, dec, base), keras_out, rtol=1e-4, atol=1e-5)


def test_weather_changes_the_forecast(fitted: LSTMForecaster, frame: pd.DataFrame) -> None:
    future = frame.iloc[-HOLDOUT:][[TEMPERATURE]]
    hot = future + 8.0
    a = fitted.predict(48, future_covariates=future)["mean"]
    b = fitted.predict(48, future_covariates=hot)["mean"]
    assert not np.allclose(a, b)


def test_update_moves_the_origin(fitted: LSTMForecaster, frame: pd.DataFrame, tmp_path) -> None:
    cut = len(frame) - HOLDOUT
    copy = LSTMForecaster.load(fitted.save(tmp_path / "m"))
    copy.update(frame.iloc[cut:cut + 24])
    after_update = copy.predict(24)
    from_history = fitted.predict(24, history=frame.iloc[:cut + 24])
    assert after_update.index[0] == frame.index[cut + 24]
    pd.testing.assert_frame_equal(after_update, from_history)


def test_bad_requests_raise_domain_errors(fitted: LSTMForecaster, frame: pd.DataFrame) -> None:
    with pytest.raises(UserInputError):
        fitted.predict(fitted.H_ + 1)
    with pytest.raises(InsufficientDataError):
        fitted.predict(24, history=frame.iloc[:48])
    with pytest.raises(InsufficientDataError):
        LSTMForecaster(quick=True, verbose=0).fit(frame.iloc[:24 * 10])
    holey = frame.copy()
    holey.loc[holey.index[::50], LOAD] = np.nan  # every 168-step target window has a hole
    with pytest.raises(InsufficientDataError, match="missing targets"):
        LSTMForecaster(quick=True, verbose=0).fit(holey)


def test_save_load_reproduces_forecasts_in_a_fresh_process(
    fitted: LSTMForecaster, frame: pd.DataFrame, tmp_path
) -> None:
    directory = fitted.save(tmp_path / "lstm")
    history = frame.iloc[: len(frame) - HOLDOUT + 7]
    history.to_parquet(tmp_path / "history.parquet")
    expected = fitted.predict(72, history=history)
    script = textwrap.dedent(
        f"""
        import json, pandas as pd
        from gridcast.models.base import Forecaster
        model = Forecaster.load({str(directory)!r})
        history = pd.read_parquet({str(tmp_path / "history.parquet")!r})
        fc = model.predict(72, history=history)
        print(json.dumps({{"mean": fc["mean"].tolist(), "hi": fc["hi-95"].tolist(), "alias": model.alias}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["alias"] == "lstm"
    assert got["mean"] == expected["mean"].tolist()
    assert got["hi"] == expected["hi-95"].tolist()
