"""A weighted ensemble of forecasters, weights from out-of-sample validation error.

Why like this: the members (SARIMAX, LSTM, optionally the naive) err differently — the
SARIMAX follows the last days closely, the LSTM knows the long-run calendar and the
temperature response — so a combination usually beats both. Weights must come from
errors on data the members did not see, so ``fit``:

1. fits every member on the history minus the last ``val_days``;
2. walks through those days with daily origins (forecast ``2 × steps-per-day`` ahead,
   then ``update`` the member with the day's actuals — the way the model is used);
3. sets weights ∝ 1 / MSE (inverse-variance weighting: the least-squares optimal
   combination of unbiased, uncorrelated forecasts, and far more stable on a week of
   data than a free least-squares fit);
4. ends with every member updated through the end of the history — no second fit.

Members can be refitted at their own pace inside ``update`` (``member_refit_days``,
e.g. ``{"sarimax": 7}``): a SARIMAX fit takes seconds and follows the season's
temperature response, an LSTM fit takes minutes and need not be redone weekly. The
ensemble keeps the last ``buffer_days`` of observations for those refits; the
weights stay as validated.

Plausibility: the ensemble records the band of its history
(:class:`gridcast.guard.PlausibleBand`) at ``fit``; a member whose forecast is
implausible (non-finite, or outside the band) is dropped for that forecast and the
others' weights are renormalised (counted in ``member_drops_``, logged). When every
member fails, the plain combination is returned and the caller's guard falls back
(:meth:`EnsembleForecaster.fallback_members` gives the order of the members to try).

Intervals: the weighted average of the members' bounds per level (a convex
combination of quantiles is a quantile of the mixture's comonotonic approximation);
the validation coverage is recorded so that a backtest can check it.
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
from gridcast.schema import LOAD, WEATHER, infer_freq, steps_per_day

log = logging.getLogger(__name__)

MEMBERS_DIR = "members"
BUFFER_FILE = "buffer.parquet"


class EnsembleForecaster(Forecaster):
    """Inverse-MSE weighted combination of member forecasters.

    Args:
        members: aliases of the member models (``sarimax``, ``lstm``, ``naive``).
        member_params: alias -> constructor parameters of that member.
        val_days: days held out at the end of the history to weigh the members.
        member_refit_days: alias -> refit that member inside ``update`` when this many
            days have passed since its last fit (others only ever ``update``).
        buffer_days: observations kept for those refits (cover the member's window).

    Example:
        >>> from training.data.synthetic import generate
        >>> from gridcast.schema import region_frame
        >>> df, _ = generate(days=28, seed=3)
        >>> ens = EnsembleForecaster(members=["naive", "sarimax"], val_days=3,
        ...     member_params={"sarimax": {"window_weeks": 2, "maxiter": 5}})
        >>> fc = ens.fit(region_frame(df, "region-1")).predict(24)
        >>> round(sum(ens.weights_.values()), 6), len(fc)
        (1.0, 24)
    """

    alias = "ensemble"

    def __init__(
        self,
        members: Sequence[str] = ("sarimax", "lstm"),
        member_params: dict[str, dict[str, Any]] | None = None,
        val_days: int = 7,
        member_refit_days: dict[str, int] | None = None,
        buffer_days: int = 63,
    ) -> None:
        members = list(members)
        if not members or len(set(members)) != len(members) or "ensemble" in members:
            raise UserInputError("ensemble members must be distinct, non-ensemble models", field="members")
        super().__init__(members=members, member_params=member_params or {}, val_days=val_days,
                         member_refit_days=member_refit_days or {}, buffer_days=buffer_days)
        self.members = members
        self.member_refit_days = {m: int(d) for m, d in (member_refit_days or {}).items() if m in members}
        self.buffer_days = int(buffer_days)
        self.member_params = member_params or {}
        self.val_days = int(val_days)

    def fit(self, history: pd.DataFrame) -> Self:
        freq = infer_freq(history.index)
        spd = steps_per_day(freq)
        val = self.val_days * spd
        if len(history) <= val + 3 * spd:
            raise InsufficientDataError(f"the ensemble needs more than {self.val_days + 3} days of history")
        train, valid = history.iloc[:-val], history.iloc[-val:]
        models = {m: make(m, **self.member_params.get(m, {})).fit(train) for m in self.members}
        sq_err: dict[str, list[np.ndarray]] = {m: [] for m in self.members}
        fcs: dict[str, list[pd.DataFrame]] = {m: [] for m in self.members}
        weather_cols = [c for c in WEATHER if c in history]
        for day in range(self.val_days):
            block = valid.iloc[day * spd:]
            horizon = min(2 * spd, len(block))
            future = block.iloc[:horizon]
            covariates = future[weather_cols] if weather_cols else None
            for m, model in models.items():
                fc = model.predict(horizon, future_covariates=covariates, level=(90,))
                fc = fc.reindex(future.index)
                sq_err[m].append((fc["mean"] - future[LOAD]).to_numpy(float) ** 2)
                fcs[m].append(fc.assign(actual=future[LOAD]))
                model.update(valid.iloc[day * spd:(day + 1) * spd])
        mse = {m: float(np.nanmean(np.concatenate(v))) for m, v in sq_err.items()}
        if not all(np.isfinite(v) for v in mse.values()):
            raise InsufficientDataError(f"validation errors could not be computed: {mse}")
        inv = {m: 1.0 / max(v, 1e-12) for m, v in mse.items()}
        total = sum(inv.values())
        self.weights_ = {m: inv[m] / total for m in self.members}
        self.members_ = models
        self.freq_ = freq
        self.fitted_at_ = {m: train.index[-1] for m in self.members}
        self.buffer_ = history.iloc[-self.buffer_days * spd:] if self.member_refit_days else history.iloc[:0]
        self.band_ = PlausibleBand.from_load(history[LOAD].to_numpy(float))
        self.member_drops_ = {m: 0 for m in self.members}
        self.validation_ = self._validation_summary(fcs, mse)
        log.info("ensemble weights %s (validation %s)", self.weights_, self.validation_)
        return self

    def _validation_summary(self, fcs: dict[str, list[pd.DataFrame]], mse: dict[str, float]) -> dict[str, Any]:
        """Member and ensemble MAPE / 90 % coverage on the validation days."""
        def mape(frame: pd.DataFrame, col: str = "mean") -> float:
            ok = frame["actual"].notna() & frame[col].notna() & (frame["actual"] != 0)
            return float((np.abs(frame[col] - frame["actual"]) / frame["actual"].abs())[ok].mean() * 100)

        stacked = {m: pd.concat(v) for m, v in fcs.items()}
        combo = self._combine({m: f.drop(columns="actual") for m, f in stacked.items()}, (90,))
        combo["actual"] = next(iter(stacked.values()))["actual"].to_numpy()
        covered = (combo["actual"] >= combo["lo-90"]) & (combo["actual"] <= combo["hi-90"])
        return {
            "member_mape": {m: mape(f) for m, f in stacked.items()},
            "member_mse": mse,
            "mape": mape(combo),
            "coverage_90": float(covered[combo["actual"].notna()].mean() * 100),
        }

    def _combine(self, forecasts: dict[str, pd.DataFrame], level: Sequence[int],
                 weights: dict[str, float] | None = None) -> pd.DataFrame:
        """Weighted sum of the members' mean and bounds (positional: same horizon)."""
        weights = self.weights_ if weights is None else weights
        cols = interval_columns(level)
        first = next(iter(forecasts.values()))
        out = pd.DataFrame(0.0, index=first.index, columns=cols)
        for m, fc in forecasts.items():
            out += weights[m] * fc[cols].to_numpy(float)
        return out

    def _combine_plausible(self, forecasts: dict[str, pd.DataFrame], level: Sequence[int]) -> pd.DataFrame:
        """:meth:`_combine` without the members whose forecast is implausible (weights renormalised)."""
        band = getattr(self, "band_", None)
        cols = interval_columns(level)
        bad = [m for m, fc in forecasts.items()
               if implausible(fc["mean"].to_numpy(float), band)[0] or not np.isfinite(fc[cols].to_numpy(float)).all()]
        if not bad:
            return self._combine(forecasts, level)
        drops = self.__dict__.setdefault("member_drops_", {})
        for m in bad:
            drops[m] = drops.get(m, 0) + 1
        good = {m: fc for m, fc in forecasts.items() if m not in bad}
        total = sum(self.weights_[m] for m in good)
        if not good or total <= 0:
            log.warning("ensemble: every member's forecast is implausible (%s); the caller's guard falls back", bad)
            return self._combine(forecasts, level)
        log.warning("ensemble: dropped implausible member forecast(s) %s (band %s)", bad, band)
        return self._combine(good, level, {m: self.weights_[m] / total for m in good})

    def fallback_members(self) -> list[str]:
        """Member aliases in fallback order: highest validation weight (lowest MSE) first."""
        return sorted(self.members_, key=lambda m: -self.weights_.get(m, 0.0))

    def predict(
        self,
        horizon: int,
        future_covariates: pd.DataFrame | None = None,
        level: Sequence[int] = (80, 95),
        history: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        level = check_level(level)
        fcs = {m: model.predict(horizon, future_covariates, level, history=history)
               for m, model in self.members_.items()}
        return self._combine_plausible(fcs, level)

    def predict_batch(self, requests: Sequence[ForecastRequest]) -> dict[str, pd.DataFrame]:
        """Each member answers the whole batch at once (the LSTM vectorises), then combine."""
        per_member = {m: model.predict_batch(requests) for m, model in self.members_.items()}
        return {r.id: self._combine_plausible({m: per_member[m][r.id] for m in self.members_}, check_level(r.level))
                for r in requests}

    def update(self, new_observations: pd.DataFrame) -> Self:
        """Members absorb the rows; those with a refit cadence are refitted when due."""
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
        return {"weights_": self.weights_, "freq_": self.freq_, "validation_": self.validation_,
                "fitted_at_": {m: t.isoformat() for m, t in self.fitted_at_.items()},
                "band_": None if band is None else band.to_metadata()}

    def _save(self, directory: Path) -> None:
        for m, model in self.members_.items():
            model.save(directory / MEMBERS_DIR / m)
        self.buffer_.to_parquet(directory / BUFFER_FILE)

    def _restore(self, state: dict[str, Any], directory: Path) -> None:
        self.weights_ = state["weights_"]
        self.freq_ = state["freq_"]
        self.validation_ = state["validation_"]
        self.band_ = PlausibleBand.from_metadata(state.get("band_"))  # None: saved before the guard
        self.member_drops_ = {m: 0 for m in self.members}
        self.fitted_at_ = {m: pd.Timestamp(t) for m, t in state["fitted_at_"].items()}
        self.buffer_ = pd.read_parquet(directory / BUFFER_FILE)
        self.members_ = {m: Forecaster.load(directory / MEMBERS_DIR / m) for m in self.members}
