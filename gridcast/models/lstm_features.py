"""The LSTM forecaster's inputs: calendar, weather terms, load-ratio lags, as arrays for a batch.

Shared by training (:mod:`gridcast.models.lstm_training`) and forecasting
(:mod:`gridcast.models.lstm`): both build the network's inputs with these functions,
so a served forecast sees exactly the features the network was trained on.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from gridcast.features import COOLING_BASE_C, DAY_TYPES, HEATING_BASE_C, calendar_features
from gridcast.models.lstm_net import FLAGS, WEATHER_TERMS
from gridcast.schema import LOAD

#: calendar columns (besides the Fourier terms and weekday) of a model trained now: the
#: weekend flag and every day type of :mod:`gridcast.calendar` (holidays national,
#: eve, after and regional share, bridge days, the Christmas period, clock changes).
#: A fitted model records its list as ``flags_`` and saves it, so a later change here
#: never alters what a saved model sees.
CALENDAR_FLAGS: tuple[str, ...] = ("is_weekend", *DAY_TYPES)
#: the list of a model saved before ``flags_`` was recorded (weekend and national holidays)
LEGACY_FLAGS: tuple[str, ...] = FLAGS


def calendar(model: Any, index: pd.DatetimeIndex) -> np.ndarray:
    """The calendar rows of ``index`` (UTC): Fourier terms, the model's ``flags_``, weekday one-hot.

    Below a year of training data (``holidays_`` false) the region's holidays are left
    out (zeros): from a few months the network would learn one holiday's dip and apply
    it to every other one.
    """
    country = model.params["country"] if model.holidays_ else None
    cal = calendar_features(index, country=country, tz=model.params["tz"], fourier=model.fourier_)
    fourier_cols = [c for c in cal.columns if c.startswith(("sin_", "cos_"))]
    weekday = np.eye(7, dtype=np.float32)[cal["weekday"].to_numpy().astype(int)]
    return np.hstack([cal[fourier_cols + list(model.flags_)].to_numpy(np.float32), weekday])

def weather_terms(model: Any, temps: np.ndarray) -> np.ndarray:
    """Scaled weather terms for an array of temperatures (°C, NaN = unknown → 0).

    The terms of :func:`gridcast.features.weather_features` (temperature, heating and
    cooling degrees), computed on the array directly: this runs for every batch.
    """
    t = np.asarray(temps, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        terms = np.stack([(t - model.temp_mean_) / model.temp_std_,
                          np.maximum(0.0, HEATING_BASE_C - t) / 10.0,
                          np.maximum(0.0, t - COOLING_BASE_C) / 10.0], axis=-1)
    return np.nan_to_num(terms, nan=0.0).astype(np.float32)

def lag_periods(model: Any) -> list[int]:
    return [p for p in (model.spd_, 7 * model.spd_) if p <= model.window_]

def inputs(
    model: Any,
    load: np.ndarray,
    past_temp: np.ndarray,
    past_cal: np.ndarray,
    fut_cal: np.ndarray,
    fut_temp: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encoder and decoder arrays for a batch of samples.

    Args:
        load: (B, L) input-window loads (no NaN).
        past_temp: (B, L) observed temperatures (NaN = unknown).
        past_cal: (B, D, C) calendar at the end of each day block.
        fut_cal: (B, H, C) calendar of the target steps.
        fut_temp: (B, H) future temperatures (NaN = not given).

    Returns:
        encoder (B, D, spd + C + 2), decoder (B, H, C + 4 + lags + 2), base (B, H): the
        seasonal-naive ratio the network corrects (same step last week, or yesterday
        with a shorter window), level (B,).
    """
    b, L = load.shape
    d, spd, H = model.params["input_days"], model.spd_, model.H_
    level = load.mean(axis=1)
    ratio = (load / level[:, None] - 1.0).astype(np.float32)
    blocks = ratio.reshape(b, d, spd)
    t_blocks = past_temp.reshape(b, d, spd)
    t_known = np.isfinite(t_blocks)
    n_known = t_known.sum(-1)
    t_mean = np.where(t_known, t_blocks, 0.0).sum(-1) / np.maximum(n_known, 1)
    t_scaled = np.where(n_known > 0, (t_mean - model.temp_mean_) / model.temp_std_, 0.0).astype(np.float32)
    encoder = np.concatenate(
        [blocks, past_cal, t_scaled[..., None], t_known.mean(-1, dtype=np.float32)[..., None]], axis=-1
    )
    lead = np.arange(1, H + 1)
    lags, weather_change = [], []
    both_weather = weather_terms(model, np.concatenate([past_temp, fut_temp], axis=1))
    past_weather, fut_weather = both_weather[:, :L], both_weather[:, L:]
    fut_known = np.isfinite(fut_temp)
    past_known = np.isfinite(past_temp)
    for p in lag_periods(model):
        pos = L - 1 + lead - p * np.ceil(lead / p).astype(int)  # index into the window
        lags.append(ratio[:, pos])
        # the weather change since the lagged step: what the correction to a lag
        # forecast mostly depends on (zero where either side is unknown)
        both = (fut_known & past_known[:, pos])[..., None]
        weather_change.append(np.where(both, fut_weather - past_weather[:, pos], 0.0))
    lags.append(np.repeat(ratio[:, -1:], H, axis=1))  # the last observed value
    decoder = np.concatenate(
        [
            fut_cal,
            fut_weather,
            fut_known.astype(np.float32)[..., None],
            *weather_change,
            np.stack(lags, axis=-1),
            np.broadcast_to((lead / H).astype(np.float32), (b, H))[..., None],
        ],
        axis=-1,
    )
    base = lags[-2] if len(lags) > 1 else lags[-1]
    return encoder.astype(np.float32), decoder.astype(np.float32), base.astype(np.float32), level


def feature_spec(model: Any) -> dict[str, Any]:
    """The LSTM's features in words, saved with the model (``feature_spec_``)."""
    return {
        "target": f"{LOAD} / mean({LOAD} over the input window) - 1",
        "encoder": f"{model.params['input_days']} day blocks: load ratio profile, calendar at block end, "
                   "mean temperature, temperature presence",
        "decoder": "calendar_features (Fourier " + json.dumps(model.fourier_) + f", {', '.join(model.flags_)}, weekday), "
                   f"weather_features ({', '.join(WEATHER_TERMS)}) + presence flag + their change since each "
                   "lagged step, load ratio lags "
                   f"{lag_periods(model)} steps and last value, lead",
        "country": model.params["country"],
        "holidays": model.holidays_,
        "tz": model.params["tz"],
        "freq": model.freq_,
        "horizon_steps": model.H_,
        "intervals": "split-conformal relative residuals per lead (validation split), with/without weather; "
                     "rescaled online by the model's own misses as actuals arrive (adaptive conformal, per lead band)",
    }
