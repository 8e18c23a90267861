"""An LSTM forecaster with direct multi-horizon output and conformal intervals.

Design, and why:

* **Direct multi-horizon.** One forward pass gives all ``horizon_steps`` leads (24 to
  168); a forecast for ``h`` steps takes the first ``h``. No recursion, so errors do
  not feed on themselves and one batched call serves many requests.
* **Scale-free target.** Every sample is divided by its own level (the mean load of
  its input window); the network predicts ``load / level - 1``. Regions of any size
  and a drifting level share the same patterns, and the error it minimises (MAE on
  the ratio) is the relative error that MAPE measures.
* **Encoder: an LSTM over days.** The input window (``input_days`` days) is cut into
  day-long blocks ending at the origin; each LSTM step sees one block's load profile,
  its mean temperature and the calendar at its end. Seven steps instead of 168 keep
  training on three years of hourly data within minutes on two CPU cores.
* **Decoder: one small MLP per lead, shared across leads.** For each target step it
  sees the known-future covariates (calendar and holidays from
  :func:`gridcast.features.calendar_features`, weather terms from
  :func:`gridcast.features.weather_features` when a weather forecast is given, with a
  presence flag), the same-hour-yesterday and same-hour-last-week loads as known at
  the origin, the lead, and the encoder's context (shared and per-lead).
* **Weather robustness.** Training perturbs future temperatures with a seeded error
  that grows with lead (like a weather forecast) and drops them entirely for a share
  of samples, so the model works with oracle, noisy or no weather.
* **Weight averaging.** The optimizer keeps a moving average of the weights and the
  model ends on it (per epoch during early stopping, and at the end): a smoother,
  slightly more accurate network at no cost when forecasting.
* **Intervals.** Split-conformal: relative residuals on the time-ordered validation
  split, per lead (pooled over neighbouring leads), with and without weather; stored
  as a quantile grid, so any level can be served. Then rescaled **online** from the
  model's own misses (:class:`~gridcast.models.conformal.OnlineCalibration`, the
  ensemble's adaptive scale, per quarter-day band of leads): forecasts from the model's
  state are remembered and ``update`` scores them. The fit-time errors come from a simulated weather error; the
  misses, from the weather the model is actually fed (oracle or a forecast), which is
  what its intervals must hold.

Example:
    >>> from training.data.synthetic import generate
    >>> from gridcast.schema import region_frame
    >>> df, _ = generate(days=42, seed=3)
    >>> fc = LSTMForecaster(quick=True, epochs=1, verbose=0).fit(region_frame(df, "region-1")).predict(24)
    >>> list(fc.columns), len(fc)
    (['mean', 'lo-80', 'hi-80', 'lo-95', 'hi-95'], 24)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd

from gridcast.errors import InsufficientDataError, UserInputError
from gridcast.errors import GridcastError
from gridcast.models.base import (
    Forecast,
    ForecastRequest,
    Forecaster,
    SeriesRequest,
    check_level,
    fill_gaps,
    interval_columns,
)
from gridcast.models.conformal import OnlineCalibration
from gridcast.models.lstm_features import CALENDAR_FLAGS, LEGACY_FLAGS, calendar, inputs
from gridcast.models.lstm_net import MAX_MISSING_SHARE, NET_LAYERS, build_network, forward, grid_quantile
from gridcast.series import Series
from gridcast.schema import LOAD, TEMPERATURE

if TYPE_CHECKING:
    from gridcast.settings import Settings

log = logging.getLogger(__name__)

MODEL_FILE = "lstm.keras"
ARRAYS_FILE = "lstm_arrays.npz"
#: the network's weights as arrays (what forecasting reads: no TensorFlow needed)
WEIGHTS_FILE = "lstm_weights.npz"
ONLINE_PREFIX = "online_"
# TensorFlow's C++ start-up chatter (oneDNN notices, CPU-feature hints) buries the
# CLI's own output; set before TensorFlow is first imported (a user's value wins)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class LSTMForecaster(Forecaster):
    """LSTM encoder over day blocks + shared per-lead MLP decoder; conformal intervals.

    Args:
        input_days: look-back window in days.
        horizon_steps: direct output length (steps); the longest horizon served.
        units: LSTM width; the decoder scales with it.
        epochs: maximum epochs (early stopping on the validation split).
        stride: steps between training windows.
        batch_size: training batch size.
        patience: early-stopping patience (epochs).
        val_fraction: share of the (time-ordered) windows kept for validation and
            conformal calibration.
        learning_rate: Adam learning rate.
        weather_dropout: share of training samples with no future weather.
        weather_noise_c: largest day-ahead temperature error (°C, 1 sigma) simulated.
        ema_momentum: momentum of the moving average of the weights that training
            keeps and the model ends with (0: none; see ``build_network``).
        refit_full: after early stopping on the validation split, train again on all
            windows for the best epoch count (the validation split is the most recent
            data; leaving it out costs accuracy).
        country: holiday country code.
        tz: the region's time zone (calendar terms follow local time).
        seed: seed for weights, sampling and noise.
        quick: small, fast settings (demo, tests).
        verbose: Keras progress (0 silent, 2 one line per epoch).
        settings: fills the defaults above from the process settings.
    """

    alias = "lstm"
    format_version = 2  # 2: + the online calibration's scales (lstm_arrays.npz)
    older_formats = (1,)  # read without it: the fit-time intervals until misses are scored

    def __init__(
        self,
        *,
        input_days: int | None = None,
        horizon_steps: int | None = None,
        units: int | None = None,
        epochs: int | None = None,
        stride: int | None = None,
        batch_size: int = 128,
        patience: int = 4,
        val_fraction: float = 0.15,
        learning_rate: float = 2e-3,
        weather_dropout: float = 0.25,
        weather_noise_c: float = 1.5,
        ema_momentum: float = 0.98,
        refit_full: bool = True,
        country: str | None = None,
        tz: str | None = None,
        seed: int | None = None,
        quick: bool = False,
        verbose: int = 2,
        settings: Settings | None = None,
    ) -> None:
        if settings is None:
            from gridcast.settings import Settings

            settings = Settings()
        params = {
            "input_days": input_days or settings.lstm_input_days,
            "horizon_steps": horizon_steps or settings.lstm_horizon_steps,
            "units": units or settings.lstm_units,
            "epochs": epochs or settings.lstm_epochs,
            "stride": stride or settings.lstm_stride_steps,
            "batch_size": batch_size,
            "patience": patience,
            "val_fraction": val_fraction,
            "learning_rate": learning_rate,
            "weather_dropout": weather_dropout,
            "weather_noise_c": weather_noise_c,
            "ema_momentum": ema_momentum,
            "refit_full": refit_full,
            "country": country if country is not None else settings.country,
            "tz": tz if tz is not None else settings.region_timezone,
            "seed": settings.seed if seed is None else seed,
            "quick": quick,
            "verbose": verbose,
        }
        if quick:
            # seconds on synthetic data: a narrower net, small batches (short series
            # give few windows), every window
            params["epochs"] = min(params["epochs"], epochs or 20)
            params["stride"] = stride or 1
            params["units"] = min(params["units"], units or 32)
            params["batch_size"] = min(batch_size, 32)
        super().__init__(**params)
        self._reset_caches()

    def _reset_caches(self) -> None:
        """Forget what was derived from the context (calendar table, windows, interval quantiles)."""
        self._cal_table = None
        self.__dict__.pop("_ctx", None)
        self.__dict__.pop("_q_cache", None)

    # -- features -------------------------------------------------------------------
    def _build(self, enc_shape: tuple[int, int], dec_shape: tuple[int, int], steps_per_epoch: int | None = None):
        return build_network(enc_shape, dec_shape, units=self.params["units"], horizon=self.H_,
                             learning_rate=self.params["learning_rate"],
                             ema_momentum=self.params.get("ema_momentum", 0.0), steps_per_epoch=steps_per_epoch)

    # -- training -------------------------------------------------------------------
    def fit(self, history: pd.DataFrame) -> Self:
        """Train on one region's frame (``load_mw`` + optional ``temperature_c``): see
        :func:`gridcast.models.lstm_training.fit_lstm` (training code a served model never imports).

        Raises:
            InsufficientDataError: too short for one window plus validation.
        """
        from gridcast.models.lstm_training import fit_lstm

        self.flags_ = CALENDAR_FLAGS  # the calendar columns, saved with the model (_state)
        return fit_lstm(self, history)

    # -- the network's forward pass ----------------------------------------------------
    @property
    def model_(self):
        """The Keras model (training, saving). A loaded forecaster reads it from disk only when asked:
        forecasting runs on the weights alone (:meth:`_run`), without importing TensorFlow."""
        model = self.__dict__.get("_keras")
        if model is None:
            import keras

            model = self.__dict__["_keras"] = keras.models.load_model(self.__dict__["_keras_path"], compile=False)
        return model

    @model_.setter
    def model_(self, model) -> None:
        self.__dict__["_keras"] = model
        self.__dict__.pop("_weights", None)

    def _net_weights(self) -> dict[str, np.ndarray]:
        weights = self.__dict__.get("_weights")
        if weights is None:
            weights = {}
            for name in NET_LAYERS:
                for k, w in enumerate(self.model_.get_layer(name).get_weights()):
                    weights[f"{name}/{k}"] = np.asarray(w, dtype=np.float64)  # see lstm_net.forward
            self.__dict__["_weights"] = weights
        return weights

    def _run(self, enc: np.ndarray, dec: np.ndarray, base: np.ndarray, leads: np.ndarray | None = None) -> np.ndarray:
        """The network's ratio output for stacked inputs: its forward pass on the weights, in numpy.

        The same arithmetic as the Keras model (:meth:`_build`: an LSTM over the day
        blocks, a context layer, a per-lead context, a three-layer head added to the
        seasonal-naive base), in float64 (a forecast does not depend on its batch), as
        one batched computation (its speed: BENCHMARKS.md, model-only limits). Serving
        needs neither TensorFlow nor its seconds of import and hundreds of megabytes: a
        saved model carries its weights as arrays too.
        """
        w = self._net_weights()
        out = np.empty(base.shape, dtype=np.float64)
        chunk = 2048  # bounded memory for calibration-sized batches
        for i in range(0, len(enc), chunk):
            out[i:i + chunk] = forward(w, enc[i:i + chunk], dec[i:i + chunk], base[i:i + chunk],
                                       None if leads is None else leads[i:i + chunk])
        return out

    # -- forecasting ------------------------------------------------------------------
    @property
    def _step_s(self) -> int:
        cached = self.__dict__.get("_step_cache")  # read per request: pd.Timedelta is slow
        if cached is None or cached[0] != self.freq_:
            cached = self.__dict__["_step_cache"] = (self.freq_, int(pd.Timedelta(self.freq_).total_seconds()))
        return cached[1]

    def _calendar_rows(self, epochs: np.ndarray) -> np.ndarray:
        """Calendar rows for epoch seconds on the model's grid, from a table built once.

        The table covers the model's context and the year after it; a request outside
        that range widens it once (under a lock), so holidays and Fourier terms are
        computed per process, not per timestamp and request.
        """
        step = self._step_s
        lo, hi = int(epochs.min()), int(epochs.max())
        table = self._cal_table
        if table is None or lo < table[0] or hi > table[1]:
            import threading

            lock = self.__dict__.setdefault("_cal_lock", threading.Lock())
            with lock:
                table = self._cal_table
                if table is None or lo < table[0] or hi > table[1]:
                    anchor = int(self.context_.index[-1].value // 10**9)
                    start = min(lo, anchor - 60 * 86400, table[0] if table else lo)
                    end = max(hi, anchor + 400 * 86400, table[1] if table else hi)
                    start -= start % step
                    index = pd.date_range(pd.Timestamp(start, unit="s", tz="UTC"),
                                          pd.Timestamp(end, unit="s", tz="UTC"), freq=f"{step}s")
                    table = (start, int(index[-1].value // 10**9), calendar(self, index))
                    self._cal_table = table
        return table[2][(epochs - table[0]) // step]

    def _window(self, request: SeriesRequest) -> tuple[int, np.ndarray, np.ndarray]:
        """The input window of one request: (last epoch, filled load (L,), temperature (L,))."""
        L, step = self.window_, self._step_s
        if request.history is None:
            ctx = self.__dict__.get("_ctx")
            if ctx is None:
                window = self.context_.iloc[-L:]
                temp = window[TEMPERATURE].to_numpy(float) if TEMPERATURE in window else np.full(len(window), np.nan)
                ctx = self._ctx = (int(window.index[-1].value // 10**9), window[LOAD].to_numpy(float), temp)
            last, load, temp = ctx
        else:
            hist = request.history
            if hist.step != step:
                raise UserInputError(f"history step is {hist.step} s; this model forecasts every {step} s",
                                     field="history")
            valid = np.flatnonzero(np.isfinite(hist.load))
            if not len(valid):
                raise InsufficientDataError("history has no load values")
            hist = hist.until(hist.start + int(valid[-1]) * step).tail(L)
            last, load = hist.end, hist.load
            temp = hist.get(TEMPERATURE)
            temp = np.full(len(load), np.nan) if temp is None else temp
        if len(load) < L:
            raise InsufficientDataError(
                f"LSTM needs {L} steps of history ({self.params['input_days']} days), got {len(load)}"
            )
        if np.count_nonzero(np.isnan(load)) > MAX_MISSING_SHARE * len(load):
            raise InsufficientDataError(f"more than {MAX_MISSING_SHARE:.0%} of the input window is missing")
        return last, fill_gaps(load), temp

    def _future_temp(self, last: int, covariates: Series | None) -> np.ndarray:
        """Forecast temperatures on the target steps (NaN where the covariates have none)."""
        out = np.full(self.H_, np.nan)
        temp = covariates.get(TEMPERATURE) if covariates is not None else None
        if temp is None:
            return out
        targets = last + self._step_s * np.arange(1, self.H_ + 1, dtype=np.int64)
        epochs = covariates.epochs()
        pos = np.searchsorted(epochs, targets)
        found = (pos < len(epochs)) & (epochs[np.minimum(pos, len(epochs) - 1)] == targets)
        out[found] = temp[pos[found]]
        return out

    def _interval_quantiles(self, has_weather: bool, level: int) -> tuple[np.ndarray, np.ndarray]:
        cache = self.__dict__.setdefault("_q_cache", {})
        key = (has_weather, level)
        if key not in cache:
            grid = self.quantiles_["weather" if has_weather else "no_weather"]
            alpha = 1 - level / 100
            cache[key] = self.online_.relative_bounds(grid_quantile(grid, alpha / 2), grid_quantile(grid, 1 - alpha / 2))
        return cache[key]

    def predict(
        self,
        horizon: int,
        future_covariates: pd.DataFrame | None = None,
        level: Sequence[int] = (80, 95),
        history: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """Forecast ``horizon`` steps after the stored context (or after ``history``)."""
        req = ForecastRequest(id="0", horizon=horizon, level=tuple(level), history=history,
                              future_covariates=future_covariates)
        return self.predict_batch([req])["0"]

    def predict_batch(self, requests: Sequence[ForecastRequest]) -> dict[str, pd.DataFrame]:
        """Frame requests through :meth:`predict_series` (one network call for all).

        Raises:
            UserInputError: a horizon beyond ``horizon_steps`` or a bad level.
            InsufficientDataError: a request's history is shorter than the input window.
        """
        step = self._step_s
        series = [SeriesRequest(
            r.horizon, tuple(r.level),
            Series.from_frame(r.history[[c for c in (LOAD, TEMPERATURE) if c in r.history]], step=step)
            if r.history is not None else None,
            Series.from_frame(r.future_covariates[[TEMPERATURE]], step=step)
            if r.future_covariates is not None and TEMPERATURE in r.future_covariates else None,
        ) for r in requests]
        out = {}
        for r, result in zip(requests, self.predict_series(series), strict=True):
            if isinstance(result, GridcastError):
                raise result
            out[r.id] = result.to_frame()[interval_columns(check_level(r.level))]
        return out

    def predict_series(self, requests: Sequence[SeriesRequest]) -> list[Forecast | GridcastError]:
        """All requests in ONE network call, its head on the steps asked for; features as array work on the batch.

        Per request only the input window is sliced; the calendar comes from a table
        (:meth:`_calendar_rows`), weather terms, lags and intervals are computed on the
        stacked batch. A request that cannot be answered (bad horizon, short history)
        gets its error in its place; the others are unaffected.
        """
        out: list[Forecast | GridcastError | None] = [None] * len(requests)
        ok, lasts, loads, temps, futs = [], [], [], [], []
        for i, r in enumerate(requests):
            try:
                if not 1 <= r.horizon <= self.H_:
                    raise UserInputError(f"horizon must be between 1 and {self.H_} steps, got {r.horizon}",
                                         field="horizon")
                check_level(r.level)
                last, load, temp = self._window(r)
            except GridcastError as exc:
                out[i] = exc
                continue
            ok.append(i)
            lasts.append(last)
            loads.append(load)
            temps.append(temp)
            futs.append(self._future_temp(last, r.covariates))
        if not ok:
            return out
        d, spd, H, step = self.params["input_days"], self.spd_, self.H_, self._step_s
        last = np.asarray(lasts, dtype=np.int64)
        offsets = np.concatenate([-spd * step * np.arange(d - 1, -1, -1), step * np.arange(1, H + 1)])
        calendar = self._calendar_rows(last[:, None] + offsets[None, :])
        fut_temp = np.stack(futs)
        enc, dec, base, level = inputs(self, np.stack(loads), np.stack(temps), calendar[:, :d], calendar[:, d:],
                                             fut_temp)
        mean_all = level[:, None] * (1.0 + self._run(enc, dec, base, leads=np.array([requests[i].horizon for i in ok])))
        for k, i in enumerate(ok):
            r = requests[i]
            h = r.horizon
            mean = mean_all[k, :h]
            has_weather = bool(np.isfinite(fut_temp[k, :h]).any())
            lower, upper = {}, {}
            for lv in r.level:
                lo_q, hi_q = self._interval_quantiles(has_weather, int(lv))
                lower[int(lv)] = np.minimum(mean * (1 + lo_q[:h]), mean)
                upper[int(lv)] = np.maximum(mean * (1 + hi_q[:h]), mean)
            if r.history is None:  # from the model's own state: scored by `update` (online calibration)
                lo_q, hi_q = self._interval_quantiles(has_weather, 90)
                self.online_.remember((int(last[k]) + step) * 10**9, mean, mean * (1 + lo_q[:h]), mean * (1 + hi_q[:h]))
            out[i] = Forecast(int(last[k]) + step, step, mean, lower, upper)
        return out

    @property
    def min_history_steps(self) -> int:
        """Steps of history a request needs (the input window); shorter ones fall back."""
        return self.window_

    def update(self, new_observations: pd.DataFrame) -> Self:
        """Append actuals to the context (no refit; the next forecast starts after them); score the remembered
        forecasts they reach (online calibration)."""
        if LOAD in new_observations and self.online_.observe(
                pd.DatetimeIndex(new_observations.index).as_unit("ns").asi8, new_observations[LOAD].to_numpy(float)):
            self.__dict__.pop("_q_cache", None)
        cols = list(self.context_.columns)
        new = new_observations[[c for c in cols if c in new_observations]]
        ctx = pd.concat([self.context_, new])
        ctx = ctx[~ctx.index.duplicated(keep="last")].sort_index()
        ctx = ctx.asfreq(self.freq_)
        last_obs = ctx[LOAD].last_valid_index()
        self.context_ = ctx.loc[:last_obs].iloc[-self.window_:]
        self.__dict__.pop("_ctx", None)
        return self

    # -- persistence --------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        ctx = self.context_
        return {
            "freq_": self.freq_,
            "spd_": self.spd_,
            "window_": self.window_,
            "H_": self.H_,
            "fourier_": self.fourier_,
            "holidays_": self.holidays_,
            "flags_": list(self.flags_),
            "temp_mean_": self.temp_mean_,
            "temp_std_": self.temp_std_,
            "epochs_run_": self.epochs_run_,
            "val_loss_": self.val_loss_,
            "feature_spec_": self.feature_spec_,
            "online_calibration": self.online_.summary(),
            "context_index": [t.isoformat() for t in ctx.index],
            "context": {c: [None if not np.isfinite(v) else float(v) for v in ctx[c].to_numpy(float)]
                        for c in ctx.columns},
        }

    def _save(self, directory: Path) -> None:
        self.model_.save(directory / MODEL_FILE)
        np.savez(directory / ARRAYS_FILE, **{f"q_{k}": v for k, v in self.quantiles_.items()},
                 **self.online_.to_arrays(ONLINE_PREFIX))
        # the trained float32 values (forecasting widens them to float64: exact)
        np.savez(directory / WEIGHTS_FILE, **{k: v.astype(np.float32) for k, v in self._net_weights().items()})

    def _restore(self, state: dict[str, Any], directory: Path) -> None:
        self.fourier_ = {k: tuple(v) for k, v in state["fourier_"].items()}
        self.holidays_ = state["holidays_"]
        self.flags_ = tuple(state.get("flags_", LEGACY_FLAGS))  # saved before the list was recorded: the old one
        for key in ("freq_", "spd_", "window_", "H_", "temp_mean_", "temp_std_", "epochs_run_", "val_loss_",
                    "feature_spec_"):
            setattr(self, key, state[key])
        index = pd.DatetimeIndex(state["context_index"]).tz_convert("UTC")
        self.context_ = pd.DataFrame(
            {c: np.array([np.nan if v is None else v for v in vals], dtype=float)
             for c, vals in state["context"].items()},
            index=index,
        ).asfreq(self.freq_)
        self.context_.index.name = "timestamp"
        self.__dict__.pop("_keras", None)
        self.__dict__["_keras_path"] = directory / MODEL_FILE
        if (directory / WEIGHTS_FILE).exists():  # else read from the Keras file on first use
            with np.load(directory / WEIGHTS_FILE) as arrays:
                self.__dict__["_weights"] = {k: arrays[k].astype(np.float64) for k in arrays.files}
        else:
            self.__dict__.pop("_weights", None)
        with np.load(directory / ARRAYS_FILE) as arrays:
            self.quantiles_ = {k[2:]: arrays[k] for k in arrays.files if k.startswith("q_")}
            self.online_ = self._new_online().restore(arrays, ONLINE_PREFIX)  # format 1: scale 1
        self._reset_caches()

    def _new_online(self) -> OnlineCalibration:
        """No misses scored yet: the fit-time intervals (``fit``, a model saved before the scale)."""
        return OnlineCalibration.empty(n_leads=self.H_, steps_per_day=self.spd_, step_ns=self._step_s * 10**9)
