"""The LSTM's calendar columns are recorded with the model; a model saved without them keeps the old ones."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gridcast.models.base import Forecaster
from gridcast.models.lstm import LSTMForecaster
from gridcast.models.lstm_features import CALENDAR_FLAGS, LEGACY_FLAGS, calendar
from gridcast.models.lstm_training import fit_lstm
from gridcast.schema import TEMPERATURE, region_frame
from gridcast.synthetic import generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df, _ = generate(days=60, regions=1, seed=5, country="ES")
    return region_frame(df, "region-1")


def _model() -> LSTMForecaster:
    return LSTMForecaster(quick=True, epochs=2, verbose=0, seed=1, country="ES", tz="Europe/Madrid")


@pytest.fixture(scope="module")
def fitted(frame) -> LSTMForecaster:
    return _model().fit(frame)


def test_a_new_model_records_and_saves_its_calendar_columns(fitted, tmp_path):
    assert fitted.flags_ == CALENDAR_FLAGS
    assert {"bridge", "christmas_period", "clock_change", "holiday_share"} <= set(fitted.flags_)
    n_fourier = sum(2 * order for _, order in fitted.fourier_.values())
    assert calendar(fitted, fitted.context_.index[:3]).shape == (3, n_fourier + len(CALENDAR_FLAGS) + 7)
    loaded = Forecaster.load(fitted.save(tmp_path / "m"))
    assert loaded.flags_ == CALENDAR_FLAGS
    pd.testing.assert_frame_equal(loaded.predict(48), fitted.predict(48))


def test_a_model_saved_before_the_list_was_recorded_forecasts_as_before(frame, tmp_path):
    old = _model()
    old.flags_ = LEGACY_FLAGS  # what every model saved before issue 16 was trained on
    fit_lstm(old, frame)
    directory = old.save(tmp_path / "old")
    meta_file = directory / "forecaster.json"
    meta = json.loads(meta_file.read_text())
    del meta["state"]["flags_"]
    meta_file.write_text(json.dumps(meta))

    loaded = Forecaster.load(directory)
    assert loaded.flags_ == LEGACY_FLAGS
    history = frame.iloc[:-24]
    future = frame.iloc[-24:][[TEMPERATURE]]
    np.testing.assert_array_equal(loaded.predict(24, future_covariates=future, history=history).to_numpy(),
                                  old.predict(24, future_covariates=future, history=history).to_numpy())


def test_christmas_and_clock_changes_reach_the_calendar_rows(fitted):
    model = fitted
    idx = pd.DatetimeIndex(["2024-12-25 12:00", "2024-12-20 12:00", "2024-10-27 12:00"], tz="UTC")
    rows = calendar(model, idx)
    n_fourier = rows.shape[1] - len(CALENDAR_FLAGS) - 7
    flags = rows[:, n_fourier:n_fourier + len(CALENDAR_FLAGS)]
    col = {name: i for i, name in enumerate(CALENDAR_FLAGS)}
    assert flags[:, col["christmas_period"]].tolist() == [1.0, 0.0, 0.0]
    assert flags[:, col["clock_change"]].tolist() == [0.0, 0.0, 1.0]
