"""Training the LSTM forecaster: windows, weather-noise augmentation, early stopping, conformal calibration.

Kept apart from :mod:`gridcast.models.lstm` so that a served model, which only
forecasts, never imports it (nor TensorFlow): training writes the model store, serving
only loads. :func:`fit_lstm` is what ``LSTMForecaster.fit`` runs.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from gridcast.errors import InsufficientDataError
from gridcast.models.lstm_features import calendar as calendar_table
from gridcast.models.lstm_features import feature_spec, inputs
from gridcast.models.lstm_net import (
    ANNUAL_MIN_DAYS,
    FOURIER,
    HOLIDAY_MIN_DAYS,
    MAX_MISSING_SHARE,
    conformal_grid,
)
from gridcast.schema import LOAD, TEMPERATURE, infer_freq, regular, steps_per_day

log = logging.getLogger("gridcast.models.lstm")


def fit_lstm(model: Any, history: pd.DataFrame) -> Any:
    """Train on one region's frame (``load_mw`` + optional ``temperature_c``).

    Raises:
        InsufficientDataError: too short for one window plus validation.
    """
    import keras
    import tensorflow as tf

    p = model.params
    frame = regular(history)
    model.freq_ = infer_freq(frame.index)
    model.spd_ = steps_per_day(model.freq_)
    model.window_ = p["input_days"] * model.spd_
    model.H_ = int(p["horizon_steps"])
    L, H = model.window_, model.H_
    span_days = (frame.index[-1] - frame.index[0]) / pd.Timedelta(days=1)
    model.fourier_ = {k: v for k, v in FOURIER.items() if k != "annual" or span_days >= ANNUAL_MIN_DAYS}
    model.holidays_ = bool(span_days >= HOLIDAY_MIN_DAYS)
    y = frame[LOAD].to_numpy(float)
    temp = frame[TEMPERATURE].to_numpy(float) if TEMPERATURE in frame else np.full(len(frame), np.nan)
    finite_t = temp[np.isfinite(temp)]
    model.temp_mean_ = float(finite_t.mean()) if finite_t.size else 0.0
    model.temp_std_ = float(finite_t.std()) if finite_t.size > 1 and finite_t.std() > 0 else 1.0
    origins = np.arange(L - 1, len(y) - H)
    if len(origins) < 20:
        raise InsufficientDataError(
            f"LSTM needs at least {L + H + 20} steps ({p['input_days']} days input + {H} steps output), "
            f"got {len(y)}"
        )
    y_filled = pd.Series(y).ffill().bfill().to_numpy()
    # a window may be filled, a target may not: drop samples with missing targets
    # or mostly-missing windows
    missing = np.isnan(y)
    cum = np.concatenate([[0], np.cumsum(missing)])
    win_missing = (cum[origins + 1] - cum[origins + 1 - L]) / L
    tgt_missing = cum[origins + 1 + H] - cum[origins + 1]
    origins = origins[(win_missing <= MAX_MISSING_SHARE) & (tgt_missing == 0)]
    if len(origins) < 20:
        raise InsufficientDataError(f"LSTM: only {len(origins)} windows without missing targets; "
                                    "repair gaps (gridcast data check) or give more history")
    n_val = max(10, int(len(origins) * p["val_fraction"]))
    val_start = origins[-n_val]
    val_origins = origins[origins >= val_start]
    # purge: no training target may reach into the validation period
    train_origins = origins[origins + H < val_start][:: p["stride"]]
    if len(train_origins) < 10:
        raise InsufficientDataError(f"LSTM: only {len(train_origins)} training windows; give more history")
    calendar = calendar_table(model, frame.index)
    rng = np.random.default_rng(p["seed"])
    train = _samples(model, y_filled, temp, calendar, train_origins, rng, mode="augment")
    val = _samples(model, y_filled, temp, calendar, val_origins, rng, mode="augment")

    keras.utils.set_random_seed(p["seed"])
    tf.config.experimental.enable_op_determinism()
    model.model_ = model._build(train[0].shape[1:], train[1].shape[1:], _steps(len(train_origins), p))
    log.info("LSTM: %d training / %d validation windows, %d params", len(train_origins), len(val_origins),
             model.model_.count_params())
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=p["patience"], restore_best_weights=True)
    hist = model.model_.fit(
        list(train[:3]), train[3], validation_data=(list(val[:3]), val[3]),
        epochs=p["epochs"], batch_size=p["batch_size"], shuffle=True, callbacks=[stop], verbose=p["verbose"],
    )
    model.epochs_run_ = len(hist.history["loss"])
    model.val_loss_ = float(min(hist.history["val_loss"]))

    # split-conformal calibration on the validation windows: with a forecast-like
    # weather error, and without weather
    model.quantiles_ = {}
    for name, mode in (("weather", "noisy"), ("no_weather", "none")):
        enc, dec, base, target, level = _samples(model, y_filled, temp, calendar, val_origins, rng, mode=mode,
                                                      with_level=True)
        pred = 1.0 + model._run(enc, dec, base)
        actual = 1.0 + target
        model.quantiles_[name] = conformal_grid(actual / pred - 1.0, model.spd_)

    if p["refit_full"]:
        # the validation split is the most recent data: once it has chosen the
        # epoch count and calibrated the intervals, train again on everything for
        # that many epochs (the held-out calibration stays valid, if a little
        # conservative, for a model that has seen more data)
        model.best_epochs_ = int(np.argmin(hist.history["val_loss"])) + 1
        all_origins = origins[:: p["stride"]]
        full = _samples(model, y_filled, temp, calendar, all_origins, rng, mode="augment")
        keras.utils.set_random_seed(p["seed"])
        model.model_ = model._build(full[0].shape[1:], full[1].shape[1:], _steps(len(all_origins), p))
        log.info("LSTM: refit on all %d windows for %d epochs", len(all_origins), model.best_epochs_)
        model.model_.fit(list(full[:3]), full[3], epochs=model.best_epochs_, batch_size=p["batch_size"],
                        shuffle=True, verbose=p["verbose"])
    model.context_ = frame.iloc[-L:][[c for c in (LOAD, TEMPERATURE) if c in frame]].copy()
    model.feature_spec_ = feature_spec(model)
    model.online_ = model._new_online()  # no online scores yet: the fit-time intervals
    model.__dict__.pop("_ctx", None)
    return model


def _steps(n: int, p: dict[str, Any]) -> int:
    """Optimizer steps per epoch for ``n`` windows."""
    return max(1, -(-n // p["batch_size"]))


def _samples(
    model: Any,
    y: np.ndarray,
    temp: np.ndarray,
    calendar: np.ndarray,
    origins: np.ndarray,
    rng: np.random.Generator,
    *,
    mode: str,
    with_level: bool = False,
):
    """Training/validation arrays for ``origins`` (index of each window's last step).

    ``mode``: ``augment`` (random weather error, some samples without weather),
    ``noisy`` (a medium forecast-like error for all), ``none`` (no future weather).
    """
    L, H, spd = model.window_, model.H_, model.spd_
    d = model.params["input_days"]
    past = origins[:, None] + np.arange(-L + 1, 1)
    fut = origins[:, None] + np.arange(1, H + 1)
    block_ends = origins[:, None] - spd * np.arange(d - 1, -1, -1)
    fut_temp = temp[fut] + _weather_error(model, len(origins), rng, mode)
    if mode == "none":
        fut_temp[:] = np.nan
    past_temp = temp[past].copy()
    if mode == "augment":
        drop_past = rng.random(len(origins)) < model.params["weather_dropout"] / 2
        past_temp[drop_past] = np.nan
    enc, dec, base, level = inputs(model, y[past], past_temp, calendar[block_ends], calendar[fut], fut_temp)
    target = (y[fut] / level[:, None] - 1.0).astype(np.float32)
    return (enc, dec, base, target, level) if with_level else (enc, dec, base, target)

def _weather_error(model: Any, n: int, rng: np.random.Generator, mode: str) -> np.ndarray:
    """A forecast-like temperature error (°C): a bias plus a random walk in lead."""
    H, spd = model.H_, model.spd_
    if mode == "none":
        return np.zeros((n, H))
    scale = model.params["weather_noise_c"]
    if mode == "augment":
        sigma = rng.uniform(0.0, scale, n)[:, None]
        sigma[rng.random(n) < 0.2] = 0.0  # some samples see perfect weather
    else:
        sigma = np.full((n, 1), scale / 2)
    walk = np.cumsum(rng.normal(0.0, 1.0 / np.sqrt(spd), (n, H)), axis=1)
    err = sigma * (rng.normal(0.0, 1.0, (n, 1)) + walk) / np.sqrt(2)
    if mode == "augment":
        err[rng.random(n) < model.params["weather_dropout"]] = np.nan
    return err
