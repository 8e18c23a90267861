"""Leakage-free backtests: rolling origins, refits, updates between them, and scores.

The loop, per model and origin (in time order):

1. **Refit** when none is fitted yet or ``refit`` has passed since the last fit, on
   ``frame[frame.index < origin]`` — the slice is strict, so a fit never sees the
   origin's own step or anything after it.
2. Otherwise **update** the model with the actuals that arrived since the previous
   origin (``origin_prev <= t < origin``): what a deployed model does every hour.
3. **Predict** ``horizon`` steps from the origin. Future weather (the only thing the
   model is told about the targets) is, by ``weather``:

   * ``oracle`` — the observed weather: an upper bound no operator can reach;
   * ``noisy`` — observed temperature plus a seeded forecast-like error whose spread
     rises linearly with lead, from 0.5 °C at a lead of 1 h to 2.0 °C at 36 h
     (``sigma(h) = 0.5 + 1.5·(h − 1)/35`` °C, the same line beyond 36 h; 0.5 °C under
     an hour; :func:`gridcast.weather_error.noise_sigma`), independent for every
     step: the setting the peer models were run with, so scores compare;
   * ``noisy-ar1`` — the same spread, but the errors of neighbouring hours correlated
     (AR(1), ρ = 0.9 per hour) because weather-forecast errors come in spells: a
     harder test of a model's temperature response than independent noise.

     In both, only temperature is given (other weather columns are withheld) and the
     error depends on the origin and the seed only, so every model sees the same
     forecast;
   * ``none`` — no future weather at all.

Protocols: ``rolling`` scores all ``horizon`` steps of forecasts issued every ``step``
from ``start``; ``day-ahead`` issues at 12:00 UTC on day D−1 and scores the steps of
day D (UTC) — what grid operators publish. A reference forecast column (the
operator's) is scored on the same targets, side by side.

**Plausibility guard.** Every forecast is checked with :func:`gridcast.guard.implausible`
against the band of the history the model was (re)fitted on — the band training
records in a saved model's metadata. An implausible forecast is not scored: the next
model of the fallback chain answers (an ensemble's members, best validation weight
first, then the seasonal naive; any other model: the seasonal naive), and the rows
are flagged (``flagged``, ``answered_by``) and counted in ``result.guard`` / the JSON.
Inside an ensemble a member's implausible forecast is dropped before the combination
(counted as ``member_drops``).

Metrics per model, overall and per lead: MAPE, MAE, RMSE, bias (forecast − actual),
interval coverage and mean width per level, and the pinball loss averaged over the
quantiles the intervals and the mean stand for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gridcast.errors import InsufficientDataError, UserInputError
from gridcast.guard import PlausibleBand, implausible
from gridcast.models.base import Forecaster, SeasonalNaive
from gridcast.schema import LOAD, REFERENCE, TEMPERATURE, WEATHER, infer_freq, steps_per_day
# noisy weather: the spread of the error (sigma rises linearly with lead, the peers'
# setting) lives in the core, shared with the two-stage SARIMAX's calibration
from gridcast.weather_error import (  # noqa: F401 (re-exported: the benchmarks record them)
    NOISE_LAST_LEAD_H,
    NOISE_SIGMA_FIRST_C,
    NOISE_SIGMA_LAST_C,
    noise_sigma,
)
from training.backtest_report import compute_metrics

log = logging.getLogger(__name__)

PROTOCOLS = ("rolling", "day-ahead")
WEATHER_MODES = ("oracle", "noisy", "noisy-ar1", "none")
REFERENCE_NAME = "reference"
#: noisy-ar1: correlation of neighbouring hours' errors
NOISE_RHO = 0.9
#: the model that answers when a forecast is implausible and nothing else can
FALLBACK_NAME = "naive"


@dataclass(frozen=True)
class BacktestConfig:
    """What to backtest and how.

    Attributes:
        start: first origin (rolling) or first scored day (day-ahead), UTC.
        end: origins / scored days are before this (UTC, exclusive).
        horizon: steps forecast from each origin (rolling); day-ahead derives it.
        step: time between origins (rolling; day-ahead is daily).
        refit: refit a model when this much time has passed since its last fit.
        protocol: ``rolling`` or ``day-ahead``.
        weather: ``oracle``, ``noisy``, ``noisy-ar1`` or ``none`` (future weather given to models).
        levels: interval levels to request and score.
        seed: seed of the noisy weather.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    horizon: int = 24
    step: str = "24h"
    refit: str = "7D"
    protocol: str = "rolling"
    weather: str = "noisy"
    levels: tuple[int, ...] = (80, 90, 95)
    seed: int = 42

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise UserInputError(f"protocol must be one of {', '.join(PROTOCOLS)}", field="protocol")
        if self.weather not in WEATHER_MODES:
            raise UserInputError(f"weather must be one of {', '.join(WEATHER_MODES)}", field="weather")
        if self.horizon < 1:
            raise UserInputError("horizon must be >= 1", field="horizon")
        if not self.start < self.end:
            raise UserInputError("start must be before end", field="start")


@dataclass(frozen=True)
class Origin:
    """One forecast: issued at ``origin`` for ``horizon`` steps, ``scored`` ones kept."""

    origin: pd.Timestamp
    horizon: int
    scored: pd.DatetimeIndex


@dataclass
class BacktestResult:
    """Forecasts (long: one row per model, origin, target), metrics and timings."""

    forecasts: pd.DataFrame
    metrics: dict[str, Any]
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    #: per model: forecasts checked / flagged implausible, who answered them, member drops
    guard: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"config": self.config, "metrics": self.metrics, "timings": self.timings, "guard": self.guard}


def _utc(ts: Any) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def make_origins(index: pd.DatetimeIndex, config: BacktestConfig) -> list[Origin]:
    """The forecast origins of the protocol inside the data's range."""
    freq = pd.Timedelta(infer_freq(index))
    start, end = _utc(config.start), _utc(config.end)
    out: list[Origin] = []
    if config.protocol == "rolling":
        for origin in pd.date_range(start, end, freq=pd.Timedelta(config.step), inclusive="left"):
            targets = pd.date_range(origin, periods=config.horizon, freq=freq)
            out.append(Origin(origin, config.horizon, targets))
    else:
        for day in pd.date_range(start.normalize(), end, freq="1D", inclusive="left"):
            origin = day - pd.Timedelta(hours=12)
            horizon = int((day + pd.Timedelta(days=1) - origin) / freq)
            out.append(Origin(origin, horizon, pd.date_range(day, periods=int(pd.Timedelta(days=1) / freq),
                                                               freq=freq)))
    last = index[-1]
    out = [o for o in out if o.scored[-1] <= last and o.origin > index[0]]
    if not out:
        raise InsufficientDataError("no forecast origin of the backtest lies inside the data's range")
    return out


def future_weather(frame: pd.DataFrame, origin: Origin, mode: str, *, seed: int) -> pd.DataFrame | None:
    """The weather a model is told for the targets of ``origin`` (see module docstring)."""
    if mode == "none":
        return None
    freq = pd.Timedelta(infer_freq(frame.index))
    targets = pd.date_range(origin.origin, periods=origin.horizon, freq=freq)
    cols = [c for c in WEATHER if c in frame]
    observed = frame[cols].reindex(targets)
    if mode == "oracle" or TEMPERATURE not in observed:
        return observed
    lead_h = (np.arange(1, origin.horizon + 1) * freq) / pd.Timedelta(hours=1)
    rng = np.random.default_rng([seed, int(origin.origin.timestamp())])
    z = rng.standard_normal(origin.horizon)
    if mode == "noisy-ar1":
        rho = NOISE_RHO ** (freq / pd.Timedelta(hours=1))
        for i in range(1, origin.horizon):
            z[i] = rho * z[i - 1] + np.sqrt(1 - rho**2) * z[i]
    return pd.DataFrame({TEMPERATURE: observed[TEMPERATURE].to_numpy() + noise_sigma(lead_h) * z}, index=targets)


def fallback_chain(model: Forecaster) -> list[tuple[str, Forecaster]]:
    """The models that answer, in order, when ``model``'s forecast is implausible.

    An ensemble's members, highest validation weight first (the naive last: it is the
    final fallback anyway); the seasonal naive on the same history is added by the caller.
    """
    members = getattr(model, "members_", None)
    if not members or not hasattr(model, "fallback_members"):
        return []
    return [(m, members[m]) for m in model.fallback_members() if m != FALLBACK_NAME]


def _naive_fallback(history: pd.DataFrame) -> Forecaster:
    """A seasonal naive fitted on the last weeks of ``history`` (instant)."""
    spd = steps_per_day(infer_freq(history.index))
    return SeasonalNaive().fit(history.iloc[-5 * 7 * spd:])


def guarded_predict(
    model: Forecaster,
    name: str,
    band: PlausibleBand | None,
    history: pd.DataFrame,
    horizon: int,
    covariates: pd.DataFrame | None,
    levels: Sequence[int],
) -> tuple[pd.DataFrame, str | None]:
    """``model``'s forecast, or the first plausible one of its fallback chain.

    Returns:
        The forecast and None, or the fallback's forecast and the name of the model
        that answered (the seasonal naive answers last, whatever it says).
    """
    fc = model.predict(horizon, future_covariates=covariates, level=levels)
    if not implausible(fc["mean"].to_numpy(float), band)[0]:
        return fc, None
    for alt_name, alt in fallback_chain(model):
        try:
            alt_fc = alt.predict(horizon, future_covariates=covariates, level=levels)
        except Exception as exc:  # noqa: BLE001 - a failing fallback is skipped, like an implausible one
            log.warning("guard: fallback %s of %s failed: %s", alt_name, name, exc)
            continue
        if not implausible(alt_fc["mean"].to_numpy(float), band)[0]:
            log.warning("guard: %s forecast implausible, answered by its member %s", name, alt_name)
            return alt_fc, alt_name
    log.warning("guard: %s forecast implausible, answered by the seasonal naive", name)
    return _naive_fallback(history).predict(horizon, level=levels), FALLBACK_NAME


def run_backtest(
    frame: pd.DataFrame,
    factories: Mapping[str, Callable[[], Forecaster]],
    config: BacktestConfig,
    *,
    reference_col: str | None = REFERENCE,
    progress: Callable[[str, int, int], None] | None = None,
) -> BacktestResult:
    """Backtest each model of ``factories`` on one region's ``frame``.

    Args:
        frame: one region, UTC index on a regular grid, ``load_mw`` + weather
            (+ the reference column).
        factories: name -> a function returning a new, unfitted forecaster.
        config: protocol, range, refit cadence, weather mode, levels.
        reference_col: outside forecast column to score side by side (if present).
        progress: called as ``progress(model, done, total)`` after each origin.

    Returns:
        The forecasts, metrics and timings (fit seconds, update milliseconds per
        new step, predict milliseconds per forecast; wall clock and process CPU).
    """
    if LOAD not in frame:
        raise UserInputError(f"the data has no {LOAD} column", field=LOAD)
    frame = frame.sort_index()
    origins = make_origins(frame.index, config)
    weather = {o.origin: future_weather(frame, o, config.weather, seed=config.seed) for o in origins}
    refit = pd.Timedelta(config.refit)
    rows: list[pd.DataFrame] = []
    timings: dict[str, dict[str, float]] = {}
    guard: dict[str, dict[str, Any]] = {}
    for name, factory in factories.items():
        member_drops: dict[str, int] = {}
        model: Forecaster | None = None
        band: PlausibleBand | None = None
        fitted_at = seen_until = None
        answered_by: dict[str, int] = {}
        fit_s: list[float] = []
        fit_cpu: list[float] = []
        upd_s, upd_steps, pred_s, pred_cpu = 0.0, 0, [], []
        for i, o in enumerate(origins):
            if model is None or o.origin - fitted_at >= refit:
                _add_drops(member_drops, model)
                t0, c0 = time.perf_counter(), time.process_time()
                history = frame[frame.index < o.origin]
                model = factory().fit(history)
                fit_s.append(time.perf_counter() - t0)
                fit_cpu.append(time.process_time() - c0)
                fitted_at = o.origin
                # what training records in the saved model's metadata
                band = PlausibleBand.from_load(history[LOAD].to_numpy(float))
            else:
                new = frame[(frame.index >= seen_until) & (frame.index < o.origin)]
                t0 = time.perf_counter()
                model.update(new)
                upd_s += time.perf_counter() - t0
                upd_steps += len(new)
            seen_until = o.origin
            t0, c0 = time.perf_counter(), time.process_time()
            fc, fallback = guarded_predict(model, name, band, frame.iloc[:frame.index.searchsorted(o.origin)],
                                           o.horizon, weather[o.origin], config.levels)
            pred_s.append(time.perf_counter() - t0)
            pred_cpu.append(time.process_time() - c0)
            if fallback:
                answered_by[fallback] = answered_by.get(fallback, 0) + 1
            rows.append(_score_rows(fc, frame, o, name, answered_by=fallback))
            if progress:
                progress(name, i + 1, len(origins))
        _add_drops(member_drops, model)
        guard[name] = {
            "checked": len(origins),
            "flagged": int(sum(answered_by.values())),
            "answered_by": answered_by,
            # summed over the refits; an ensemble's member forecasts dropped before combining
            "member_drops": dict(member_drops),
            "band": band.to_metadata() if band else None,
        }
        timings[name] = {
            "fits": len(fit_s),
            "fit_s_mean": float(np.mean(fit_s)),
            "fit_s_max": float(np.max(fit_s)),
            "update_ms_per_step": 1000 * upd_s / upd_steps if upd_steps else float("nan"),
            "predict_ms_mean": 1000 * float(np.mean(pred_s)),
            "predict_ms_median": 1000 * float(np.median(pred_s)),
            # CPU time of this process: what the work costs when the machine is shared
            # (wall times above include waiting for other processes' turn)
            "fit_cpu_s_mean": float(np.mean(fit_cpu)),
            "fit_cpu_s_max": float(np.max(fit_cpu)),
            "predict_cpu_ms_median": 1000 * float(np.median(pred_cpu)),
        }
    if reference_col and reference_col in frame and frame[reference_col].notna().any():
        for o in origins:
            ref = pd.DataFrame({"mean": frame[reference_col].reindex(o.scored)})
            rows.append(_score_rows(ref, frame, o, REFERENCE_NAME))
    forecasts = pd.concat(rows, ignore_index=True)
    return BacktestResult(
        forecasts=forecasts,
        metrics=compute_metrics(forecasts, config.levels),
        timings=timings,
        guard=guard,
        config={
            "start": str(_utc(config.start)), "end": str(_utc(config.end)), "horizon": config.horizon,
            "step": config.step, "refit": config.refit, "protocol": config.protocol,
            "weather": config.weather, "levels": list(config.levels), "seed": config.seed,
            "origins": len(origins), "models": list(factories),
        },
    )


def _add_drops(total: dict[str, int], model: Forecaster | None) -> None:
    for m, n in (getattr(model, "member_drops_", None) or {}).items():
        total[m] = total.get(m, 0) + int(n)


def _score_rows(fc: pd.DataFrame, frame: pd.DataFrame, o: Origin, name: str,
                answered_by: str | None = None) -> pd.DataFrame:
    """The scored part of one forecast, joined with the actuals (and who answered it)."""
    freq = pd.Timedelta(infer_freq(frame.index))
    fc = fc.reindex(o.scored)
    out = fc.reset_index(drop=True)
    out.insert(0, "model", name)
    out.insert(1, "origin", o.origin)
    out.insert(2, "timestamp", o.scored)
    out.insert(3, "lead", ((o.scored - o.origin) / freq).astype(int) + 1)
    out.insert(4, "actual", frame[LOAD].reindex(o.scored).to_numpy())
    out["flagged"] = answered_by is not None
    out["answered_by"] = answered_by or name
    return out
