"""LSTM training (issue 16): the network ends on a moving average of its weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.data.synthetic import generate
from gridcast.models.lstm import LSTMForecaster
from gridcast.schema import region_frame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df, _ = generate(days=90, regions=1, seed=5)
    return region_frame(df, "region-1")


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
