"""A weighted ensemble of forecasters, weights per lead that keep learning from the members' errors.

Why like this: the members (SARIMAX, LSTM, optionally the naive) err differently — the
SARIMAX follows the last days closely, the LSTM knows the long-run calendar and the
temperature response — so a combination can beat both. But their errors are strongly
correlated, and weights from one week ∝ 1/MSE made the ensemble *worse* than its LSTM
on Spain 2018 (1.97 % vs 1.87 %). So:

1. ``fit`` fits every member on the history minus the last ``val_days`` (14) and walks
   through those days with daily origins (forecast ``2 × steps-per-day`` ahead, then
   ``update`` the member with the day's actuals — the way the model is used); the
   members' relative errors per lead seed the weights;
2. the weights of each lead are the constrained minimum-variance combination of the
   members' errors (non-negative, summing to one, neighbouring leads pooled; see
   :mod:`gridcast.models.weights`): on the errors they were chosen on they are never
   worse than the best member;
3. **they keep learning**: every forecast ``predict`` makes from the model's own state
   (not a request's ``history``) is remembered per member; ``update`` scores the
   remembered forecasts whose targets have just been observed, at their lead, and
   recomputes the weights. Old errors fade with a half-life of ``half_life_days``
   (28: a season's weather regime, not last winter's);
4. ``fit`` ends with every member updated through the end of the history — no second fit.

Members can be refitted at their own pace inside ``update`` (``member_refit_days``,
e.g. ``{"sarimax": 7}``): a SARIMAX fit takes seconds and follows the season's
temperature response, an LSTM fit takes minutes and need not be redone weekly. The
ensemble keeps the last ``buffer_days`` of observations for those refits.

Plausibility: the ensemble records the band of its history
(:class:`gridcast.guard.PlausibleBand`) at ``fit``; a member whose forecast is
implausible (non-finite, or outside the band) gets no weight for that forecast (the
others' weights are renormalised per lead; counted in ``member_drops_``, logged) and
that forecast is not scored. When every member fails, the plain combination is
returned and the caller's guard falls back (:meth:`EnsembleForecaster.fallback_members`
gives the order of the members to try).

Intervals: **calibrated on the combination's own out-of-sample errors** (split
conformal, :mod:`gridcast.models.conformal`). The weighted average of the members'
bounds — what the ensemble used to serve — ignores that the combination errs less than
its members (that is what it is for): it covered 94.6 % at a nominal 90 % on Spain
2018 with members at 90 %. Instead the bound of a central ``L`` % interval is
``ŷ · (1 ± s · q_band(L))``:

* ``q_band(L)``: the conformal quantile of the combination's relative scores
  ``|y − ŷ| / |ŷ|`` in the forecast's lead band (a quarter day of leads pooled). The
  scores come from the validation days of ``fit`` (final weights), then from the
  remembered forecasts as ``update`` scores them (the combination's mean as served is
  remembered after the members'), in a rolling window of the last ``calibration_days``
  (:class:`~gridcast.models.conformal.ScoreWindow`);
* ``s``: an online scale (adaptive conformal inference): every scored target moves
  ``log s`` by ``adapt_rate · (missed − 0.1)``, ``missed`` whether it fell outside the
  90 % interval served for it (also remembered). A window's quantiles lag errors that
  grow (autumn into winter, holidays, the weather forecast's error, which the
  validation days — observed weather — do not hold): on Spain 2017 H2 the window alone
  covered 87–88 % at 90 % whatever its length (14–84 days); the scale brings the
  long-run coverage back to nominal. ``calibration_days`` 28 and ``adapt_rate`` 0.02
  (per scored target, a day-ahead forecast a day) were chosen on that replay (0.01 /
  0.02 / 0.05: 88.7 / 89.2 / 89.8 %). The rate is per target: forecasting from the
  model's state more often than daily adapts faster.

The day-ahead backtest of Spain 2017 H2 (noisy weather): 84.7 / 92.7 / 95.9 % at
80 / 90 / 95 with the members' bounds, 80.1 / 89.1 / 93.6 % calibrated; MAPE (2.01 %)
and pinball loss (118.1) unchanged, the 90 % interval 4 % narrower.

While no band has ``min_calibration_scores`` scores (a short validation, an ensemble
saved without scores), and for a forecast from which an implausible member's was
dropped (the calibration is the whole combination's: the rest err more), the weighted
members' bounds are served. The validation coverage is recorded (``validation_``:
``coverage_90`` of the calibrated intervals, each validation day scored with the
quantiles of the other days; ``coverage_90_member_bounds`` of the old ones) so that a
backtest can check it; the saved metadata also has the calibration's bands and
``interval_scale``. The scores and the scale are saved exactly (``weights.npz``).

``weights_`` (member → weight averaged over the leads) and ``lead_weights_`` (per
lead) are in the saved model's metadata (``forecaster.json``); the error sums they come
from are saved exactly (``weights.npz``). The forecasts still waiting for their actuals
are not: a loaded model remembers afresh. So an ``update`` of a model that made
forecasts since it was loaded or fitted moves its weights, which a forecast from a
request's ``history`` (no remembered forecasts) does not see.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from gridcast.errors import InsufficientDataError, UserInputError
from gridcast.guard import PlausibleBand, implausible
from gridcast.models.base import Forecaster, ForecastRequest, check_level, interval_columns, make
from gridcast.models.conformal import LeadQuantiles, ScoreWindow, adapt_log_scale
from gridcast.models.weights import LeadWeights, PendingForecasts
from gridcast.schema import LOAD, WEATHER, infer_freq, steps_per_day

log = logging.getLogger(__name__)

MEMBERS_DIR = "members"
BUFFER_FILE = "buffer.parquet"
WEIGHTS_FILE = "weights.npz"
CALIBRATION_PREFIX = "calibration_"


class EnsembleForecaster(Forecaster):
    """Combination of member forecasters with per-lead weights that learn from their errors.

    Args:
        members: aliases of the member models (``sarimax``, ``lstm``, ``naive``).
        member_params: alias -> constructor parameters of that member.
        val_days: days held out at the end of the history to seed the weights.
        member_refit_days: alias -> refit that member inside ``update`` when this many
            days have passed since its last fit (others only ever ``update``).
        buffer_days: observations kept for those refits (cover the member's window).
        half_life_days: an error observed this long ago counts half in the weights.
        lead_pool_hours: leads within this many hours of each other share their errors
            for the weights.
        shrinkage: of the error covariance towards its diagonal when choosing weights.
        calibration_days: the intervals are calibrated on the combination's scores of
            this many last days.
        min_calibration_scores: fewer scores in a lead band: the members' weighted
            bounds are served instead.
        adapt_rate: step of the intervals' online scale per scored target (adaptive
            conformal; 0: the window's quantiles alone).

    Example:
        >>> from training.data.synthetic import generate
        >>> from gridcast.schema import region_frame
        >>> df, _ = generate(days=28, seed=3)
        >>> ens = EnsembleForecaster(members=["naive", "sarimax"], val_days=3,
        ...     member_params={"sarimax": {"window_weeks": 2, "maxiter": 5}})
        >>> fc = ens.fit(region_frame(df, "region-1")).predict(24)
        >>> round(sum(ens.weights_.values()), 6), ens.lead_weights_.shape, len(fc)
        (1.0, (48, 2), 24)
    """

    alias = "ensemble"
    format_version = 3  # 2: per-lead learning weights (weights.npz); 3: + calibration scores
    older_formats = (2,)  # read without scores: the members' bounds until scores accumulate

    def __init__(
        self,
        members: Sequence[str] = ("sarimax", "lstm"),
        member_params: dict[str, dict[str, Any]] | None = None,
        val_days: int = 14,
        member_refit_days: dict[str, int] | None = None,
        buffer_days: int = 63,
        half_life_days: float = 28.0,
        lead_pool_hours: float = 3.0,
        shrinkage: float = 0.1,
        calibration_days: float = 28.0,
        min_calibration_scores: int = 20,
        adapt_rate: float = 0.02,
    ) -> None:
        members = list(members)
        if not members or len(set(members)) != len(members) or "ensemble" in members:
            raise UserInputError("ensemble members must be distinct, non-ensemble models", field="members")
        if half_life_days <= 0 or lead_pool_hours < 0 or not 0 <= shrinkage <= 1:
            raise UserInputError("half_life_days > 0, lead_pool_hours >= 0 and 0 <= shrinkage <= 1 are required",
                                 field="half_life_days")
        if calibration_days <= 0 or min_calibration_scores < 1 or adapt_rate < 0:
            raise UserInputError("calibration_days > 0, min_calibration_scores >= 1 and adapt_rate >= 0 are required",
                                 field="calibration_days")
        super().__init__(members=members, member_params=member_params or {}, val_days=val_days,
                         member_refit_days=member_refit_days or {}, buffer_days=buffer_days,
                         half_life_days=half_life_days, lead_pool_hours=lead_pool_hours, shrinkage=shrinkage,
                         calibration_days=calibration_days, min_calibration_scores=min_calibration_scores,
                         adapt_rate=adapt_rate)
        self.calibration_days = float(calibration_days)
        self.min_calibration_scores = int(min_calibration_scores)
        self.adapt_rate = float(adapt_rate)
        self.members = members
        self.member_refit_days = {m: int(d) for m, d in (member_refit_days or {}).items() if m in members}
        self.buffer_days = int(buffer_days)
        self.member_params = member_params or {}
        self.val_days = int(val_days)
        self.half_life_days = float(half_life_days)
        self.lead_pool_hours = float(lead_pool_hours)
        self.shrinkage = float(shrinkage)

    def _new_learner(self, freq: str, arrays=None) -> LeadWeights:
        step_h = pd.Timedelta(freq) / pd.Timedelta(hours=1)
        kw = {"pool": int(round(self.lead_pool_hours / step_h)), "shrinkage": self.shrinkage,
              "half_life_s": self.half_life_days * 86400.0}
        if arrays is not None:
            return LeadWeights.from_arrays(arrays, self.members, **kw)
        return LeadWeights.empty(self.members, n_leads=2 * steps_per_day(freq), **kw)

    def fit(self, history: pd.DataFrame) -> Self:
        freq = infer_freq(history.index)
        spd = steps_per_day(freq)
        val = self.val_days * spd
        if len(history) <= val + 3 * spd:
            raise InsufficientDataError(f"the ensemble needs more than {self.val_days + 3} days of history")
        train, valid = history.iloc[:-val], history.iloc[-val:]
        band = PlausibleBand.from_load(history[LOAD].to_numpy(float))
        models = {m: make(m, **self.member_params.get(m, {})).fit(train) for m in self.members}
        learner = self._new_learner(freq)
        days: list[tuple[dict[str, pd.DataFrame], pd.Series]] = []
        weather_cols = [c for c in WEATHER if c in history]
        for day in range(self.val_days):
            block = valid.iloc[day * spd:]
            horizon = min(2 * spd, len(block))
            future = block.iloc[:horizon]
            covariates = future[weather_cols] if weather_cols else None
            fcs = {}
            for m, model in models.items():
                fcs[m] = model.predict(horizon, future_covariates=covariates, level=(90,)).reindex(future.index)
                model.update(valid.iloc[day * spd:(day + 1) * spd])
            actual = future[LOAD].astype(float)
            means, _ = self._member_means(fcs, band, (90,))
            with np.errstate(invalid="ignore", divide="ignore"):
                errors = ((means - actual.to_numpy()) / np.abs(actual.to_numpy())).T
            learner.observe(np.arange(horizon), errors, at=int(history.index[-1].value))
            days.append((fcs, actual))
        if not (learner.count > 0).any():
            raise InsufficientDataError("validation errors could not be computed: no plausible member forecast "
                                        "met an observed load")
        self.members_ = models
        self.freq_ = freq
        self.band_ = band
        self._set_learner(learner)
        self.pending_ = PendingForecasts(step_ns=pd.Timedelta(freq).value)
        self.fitted_at_ = {m: train.index[-1] for m in self.members}
        self.buffer_ = history.iloc[-self.buffer_days * spd:] if self.member_refit_days else history.iloc[:0]
        self.member_drops_ = {m: 0 for m in self.members}
        self.validation_ = self._validation_summary(days)
        window = self._new_window()
        for fcs, actual in days:
            combo = self._combine(fcs, (90,))
            window.add(actual.index.as_unit("ns").asi8, np.arange(len(actual)),
                       relative_score(combo["mean"].to_numpy(float), actual.to_numpy(float)))
        self._set_window(window)
        self.log_scale_ = 0.0
        log.info("ensemble weights %s (validation %s)", self.weights_, self.validation_)
        return self

    # -- interval calibration --------------------------------------------------------
    def _new_window(self) -> ScoreWindow:
        return ScoreWindow(window_ns=int(self.calibration_days * 86400 * 10**9))

    def _calibration_band(self) -> int:
        """Leads per band of the calibration: a quarter day."""
        return max(1, steps_per_day(self.freq_) // 4)

    def _set_window(self, window: ScoreWindow) -> None:
        self.window_ = window
        self.calibration_ = window.quantiles(2 * steps_per_day(self.freq_), band=self._calibration_band(),
                                             min_count=self.min_calibration_scores)

    @staticmethod
    def _calibrated(frame: pd.DataFrame, level: Sequence[int], cal: LeadQuantiles | None,
                    scale: float = 1.0) -> pd.DataFrame:
        """``frame`` with its bounds ``ŷ · (1 ± scale · q(level))`` (as it is without a calibration)."""
        if cal is None:
            return frame
        mean = frame["mean"].to_numpy(float)
        columns = {"mean": mean}
        for lv in sorted(level):
            half = scale * cal.quantile(lv, len(frame)) * np.abs(mean)
            columns[f"lo-{lv}"], columns[f"hi-{lv}"] = mean - half, mean + half
        return pd.DataFrame(columns, index=frame.index)

    def _set_learner(self, learner: LeadWeights) -> None:
        self.learner_ = learner
        self.lead_weights_ = learner.weights()
        mean = self.lead_weights_.mean(axis=0)
        self.weights_ = {m: float(w) for m, w in zip(self.members, mean / mean.sum(), strict=True)}

    def _member_means(self, forecasts: dict[str, pd.DataFrame], band: PlausibleBand | None,
                      level: Sequence[int]) -> tuple[np.ndarray, list[str]]:
        """``(M, H)`` member means (NaN rows for the implausible members) and those members."""
        cols = interval_columns(level)
        rows, bad = [], []
        for m in self.members:
            fc = forecasts[m]
            mean = fc["mean"].to_numpy(float)
            if implausible(mean, band)[0] or not np.isfinite(fc[cols].to_numpy(float)).all():
                bad.append(m)
                mean = np.full(len(mean), np.nan)
            rows.append(mean)
        return np.array(rows), bad

    def _validation_summary(self, days: list[tuple[dict[str, pd.DataFrame], pd.Series]]) -> dict[str, Any]:
        """Member and ensemble MAPE / 90 % coverage on the validation days (final weights).

        The calibrated intervals of each day are calibrated on the other days' scores
        (leave one day out: the days are the calibration's own data); the members'
        weighted bounds are scored too (``coverage_90_member_bounds``).
        """
        def mape(pred: pd.Series, actual: pd.Series) -> float:
            ok = actual.notna() & pred.notna() & (actual != 0)
            return float((np.abs(pred - actual) / actual.abs())[ok].mean() * 100)

        def coverage(frames: list[pd.DataFrame]) -> float:
            combo = pd.concat(frames)
            covered = (actual >= combo["lo-90"]) & (actual <= combo["hi-90"])
            return float(covered[actual.notna()].mean() * 100)

        actual = pd.concat([a for _, a in days])
        member = {m: pd.concat([f[m] for f, _ in days]) for m in self.members}
        combos = [self._combine(f, (90,)) for f, _ in days]
        scores = [relative_score(c["mean"].to_numpy(float), a.to_numpy(float)) for c, (_, a) in zip(combos, days,
                                                                                                     strict=True)]
        calibrated = []
        for i, c in enumerate(combos):
            others = ScoreWindow(window_ns=np.iinfo(np.int64).max)
            for j, sc in enumerate(scores):
                if j != i:
                    others.add(np.zeros(len(sc), dtype=np.int64), np.arange(len(sc)), sc)
            cal = others.quantiles(2 * steps_per_day(self.freq_), band=self._calibration_band(),
                                   min_count=self.min_calibration_scores)
            calibrated.append(self._calibrated(c, (90,), cal))
        combo = pd.concat(combos)
        return {
            "member_mape": {m: mape(f["mean"], actual) for m, f in member.items()},
            "member_mse": {m: float(np.nanmean((f["mean"] - actual).to_numpy(float) ** 2)) for m, f in member.items()},
            "mape": mape(combo["mean"], actual),
            "coverage_90": coverage(calibrated),
            "coverage_90_member_bounds": coverage(combos),
        }

    def _lead_matrix(self, horizon: int) -> np.ndarray:
        """``(horizon, M)`` weights: leads past the learnt ones take the last learnt lead's."""
        w = self.lead_weights_
        return w[np.minimum(np.arange(horizon), len(w) - 1)]

    def _combine(self, forecasts: dict[str, pd.DataFrame], level: Sequence[int],
                 weights: np.ndarray | None = None) -> pd.DataFrame:
        """Per-lead weighted sum of the members' mean and bounds (positional: same horizon)."""
        cols = interval_columns(level)
        first = next(iter(forecasts.values()))
        weights = self._lead_matrix(len(first)) if weights is None else weights
        out = pd.DataFrame(0.0, index=first.index, columns=cols)
        for k, m in enumerate(self.members):
            if m in forecasts:
                out += weights[:, k:k + 1] * forecasts[m][cols].to_numpy(float)
        return out

    def _combine_plausible(self, forecasts: dict[str, pd.DataFrame], level: Sequence[int],
                           remember: bool = False) -> pd.DataFrame:
        """:meth:`_combine` without the members whose forecast is implausible (weights renormalised per lead).

        With ``remember`` the members' forecasts are kept for scoring when their actuals arrive.
        """
        band = getattr(self, "band_", None)
        means, bad = self._member_means(forecasts, band, level)
        good = [m for m in self.members if m not in bad]
        if bad:
            drops = self.__dict__.setdefault("member_drops_", {})
            for m in bad:
                drops[m] = drops.get(m, 0) + 1
        if not bad:
            combo = self._calibrated(self._combine(forecasts, level), level, self.calibration_,
                                     float(np.exp(self.log_scale_)))
        elif not good:
            log.warning("ensemble: every member's forecast is implausible (%s); the caller's guard falls back", bad)
            combo = self._combine(forecasts, level)
        else:
            weights = self._lead_matrix(len(means[0])).copy()
            weights[:, [self.members.index(m) for m in bad]] = 0.0
            total = weights.sum(axis=1, keepdims=True)
            equal = np.isin(np.array(self.members), good).astype(float) / len(good)
            weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0), equal)
            log.warning("ensemble: dropped implausible member forecast(s) %s (band %s)", bad, band)
            combo = self._combine({m: forecasts[m] for m in good}, level, weights)
        if remember:
            # the members' means, then the combination's mean and its calibrated 90 % bounds
            # as served (NaN, not scored, when a member was dropped: the calibration is the
            # whole combination's; bounds NaN while uncalibrated)
            served = np.full((3, means.shape[1]), np.nan)
            if not bad:
                served[0] = combo["mean"].to_numpy(float)
                if self.calibration_ is not None:
                    half = np.exp(self.log_scale_) * self.calibration_.quantile(90, len(combo)) * np.abs(served[0])
                    served[1], served[2] = served[0] - half, served[0] + half
            self.pending_.add(int(next(iter(forecasts.values())).index[0].value), np.vstack([means, served]))
        return combo

    def fallback_members(self) -> list[str]:
        """Member aliases in fallback order: highest weight (averaged over the leads) first."""
        return sorted(self.members_, key=lambda m: -self.weights_.get(m, 0.0))

    def predict(
        self,
        horizon: int,
        future_covariates: pd.DataFrame | None = None,
        level: Sequence[int] = (80, 95),
        history: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """The combined forecast; one from the model's own state is remembered for the weights."""
        level = check_level(level)
        fcs = {m: model.predict(horizon, future_covariates, level, history=history)
               for m, model in self.members_.items()}
        return self._combine_plausible(fcs, level, remember=history is None)

    def predict_batch(self, requests: Sequence[ForecastRequest]) -> dict[str, pd.DataFrame]:
        """Each member answers the whole batch at once (the LSTM vectorises), then combine."""
        per_member = {m: model.predict_batch(requests) for m, model in self.members_.items()}
        return {r.id: self._combine_plausible({m: per_member[m][r.id] for m in self.members_}, check_level(r.level),
                                              remember=r.history is None)
                for r in requests}

    def update(self, new_observations: pd.DataFrame) -> Self:
        """Score the remembered forecasts on the new actuals and re-weigh; members absorb the rows.

        Members with a refit cadence are refitted when due.
        """
        if not new_observations.empty and LOAD in new_observations:
            times = pd.DatetimeIndex(new_observations.index).as_unit("ns").asi8
            scored = self.pending_.score(times, new_observations[LOAD].to_numpy(float))
            m = len(self.members)
            for leads, errors in scored:
                self.learner_.observe(leads, errors[:, :m], at=int(times.max()))
                # the combination's relative error e = (ŷ − y)/|y| as a score |y − ŷ|/|ŷ| (load > 0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    score = np.abs(errors[:, m]) / np.abs(1.0 + errors[:, m])
                self.window_.add(np.full(len(leads), int(times.max())), leads, score)
                # adaptive conformal: the served 90 % interval's misses move the scale (shared with the LSTM)
                self.log_scale_ = adapt_log_scale(self.log_scale_, self.adapt_rate, errors[:, m + 1], errors[:, m + 2])
            if scored:
                self._set_learner(self.learner_)
                self._set_window(self.window_)
        if self.member_refit_days and not new_observations.empty:
            buf = pd.concat([self.buffer_, new_observations[self.buffer_.columns.intersection(new_observations.columns)]])
            buf = buf[~buf.index.duplicated(keep="last")].sort_index()
            self.buffer_ = buf.iloc[-self.buffer_days * steps_per_day(self.freq_):]
        for m, model in self.members_.items():
            days = self.member_refit_days.get(m)
            last = self.buffer_.index[-1] if len(self.buffer_) else None
            if days and last is not None and last - self.fitted_at_[m] >= pd.Timedelta(days=days):
                self.members_[m] = make(m, **self.member_params.get(m, {})).fit(self.buffer_)
                self.fitted_at_[m] = last
                log.info("ensemble: refitted %s on data up to %s", m, last)
            else:
                model.update(new_observations)
        return self

    # -- persistence -----------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        band = getattr(self, "band_", None)
        return {"weights_": self.weights_, "lead_weights_": self.lead_weights_.tolist(), "freq_": self.freq_,
                "validation_": self.validation_, "fitted_at_": {m: t.isoformat() for m, t in self.fitted_at_.items()},
                "band_": None if band is None else band.to_metadata(),
                "calibration_": None if self.calibration_ is None else self.calibration_.summary(),
                "interval_scale": float(np.exp(self.log_scale_))}

    def _save(self, directory: Path) -> None:
        for m, model in self.members_.items():
            model.save(directory / MEMBERS_DIR / m)
        self.buffer_.to_parquet(directory / BUFFER_FILE)
        np.savez(directory / WEIGHTS_FILE, **self.learner_.to_arrays(), **self.window_.to_arrays(CALIBRATION_PREFIX),
                 **{f"{CALIBRATION_PREFIX}log_scale": np.array(self.log_scale_)})

    def _restore(self, state: dict[str, Any], directory: Path) -> None:
        self.freq_ = state["freq_"]
        self.validation_ = state["validation_"]
        self.band_ = PlausibleBand.from_metadata(state.get("band_"))  # None: saved before the guard
        self.member_drops_ = {m: 0 for m in self.members}
        self.fitted_at_ = {m: pd.Timestamp(t) for m, t in state["fitted_at_"].items()}
        self.buffer_ = pd.read_parquet(directory / BUFFER_FILE)
        self.members_ = {m: Forecaster.load(directory / MEMBERS_DIR / m) for m in self.members}
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as z:
            self._set_learner(self._new_learner(self.freq_, z))
            # saved without scores (format 2): the members' bounds until scores accumulate
            self._set_window(ScoreWindow.from_arrays(z, CALIBRATION_PREFIX, window_ns=self._new_window().window_ns))
            key = f"{CALIBRATION_PREFIX}log_scale"
            self.log_scale_ = float(z[key]) if key in z.files else 0.0
        # forecasts still waiting for their actuals are not saved: a loaded model, like the
        # forecast from a request's history, starts from the weights alone (so that
        # "load, update, predict" equals "load, predict from the longer history")
        self.pending_ = PendingForecasts(step_ns=pd.Timedelta(self.freq_).value)


def relative_score(mean: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """The calibration's scores ``|y − ŷ| / |ŷ|`` (NaN where either is missing or ``ŷ`` is 0)."""
    mean, actual = np.asarray(mean, dtype=float), np.asarray(actual, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean != 0, np.abs(actual - mean) / np.abs(mean), np.nan)
