"""The one model contract every gridcast forecaster follows (statsforecast-style).

A forecaster works on one region's frame: a UTC ``DatetimeIndex`` (regular step)
with ``load_mw`` and, optionally, weather columns (see :mod:`gridcast.schema`).

* ``fit(history) -> self``; fitted state lives in attributes ending in ``_``.
* ``predict(horizon, future_covariates=None, level=(80, 95), history=None)`` returns
  a frame on the UTC index of the next ``horizon`` steps with ``mean`` and
  ``lo-L`` / ``hi-L`` for each level L. With ``history`` the forecast starts after the
  end of that history instead of the fitted one (the model itself is not changed):
  this is how the service answers a request that brings its own observations.
* ``update(new_observations) -> self`` absorbs new actuals without refitting.
* ``save(dir)`` / ``load(dir)`` round-trip exactly; ``alias`` names the model.
* ``predict_batch(requests)`` computes many forecasts at once; the default loops,
  models that vectorise (the LSTM) override it — adaptive batching relies on it.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from gridcast.errors import IncompatibleModelError, InsufficientDataError, UserInputError
from gridcast.schema import LOAD, infer_freq, steps_per_day

#: alias -> "module:Class"; the service and backtests resolve models through this
REGISTRY: dict[str, str] = {
    "naive": "gridcast.models.base:SeasonalNaive",
    "sarimax": "gridcast.models.sarimax:SarimaxForecaster",
    "lstm": "gridcast.models.lstm:LSTMForecaster",
    "ensemble": "gridcast.models.ensemble:EnsembleForecaster",
}

META_FILE = "forecaster.json"


def interval_columns(level: Sequence[int]) -> list[str]:
    """['mean', 'lo-80', 'hi-80', ...] in the contract's order."""
    cols = ["mean"]
    for lv in sorted(level):
        cols += [f"lo-{lv}", f"hi-{lv}"]
    return cols


def future_index(last: pd.Timestamp, freq: str, horizon: int) -> pd.DatetimeIndex:
    """The ``horizon`` timestamps that follow ``last`` on the ``freq`` grid (UTC)."""
    step = pd.Timedelta(freq)
    start = pd.Timestamp(last).tz_convert("UTC") + step
    return pd.date_range(start, periods=horizon, freq=step, name="timestamp").as_unit("ns")


def check_level(level: Sequence[int]) -> tuple[int, ...]:
    lv = tuple(int(x) for x in level)
    if any(not 0 < x < 100 for x in lv):
        raise UserInputError(f"interval levels must be between 0 and 100, got {list(lv)}", field="level")
    return lv


@dataclass(frozen=True)
class ForecastRequest:
    """One forecast to compute inside a batch (ids map results back: order is not kept)."""

    id: str
    horizon: int
    level: tuple[int, ...] = (80, 95)
    history: pd.DataFrame | None = None
    future_covariates: pd.DataFrame | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Forecaster(ABC):
    """Base class: subclasses set ``alias`` and implement the abstract methods."""

    alias: ClassVar[str]
    #: bump when the saved layout of a subclass changes; ``load`` refuses other versions
    format_version: ClassVar[int] = 1

    def __init__(self, **params: Any) -> None:
        self.params = dict(params)

    # -- contract ----------------------------------------------------------------
    @abstractmethod
    def fit(self, history: pd.DataFrame) -> Self: ...

    @abstractmethod
    def predict(
        self,
        horizon: int,
        future_covariates: pd.DataFrame | None = None,
        level: Sequence[int] = (80, 95),
        history: pd.DataFrame | None = None,
    ) -> pd.DataFrame: ...

    @abstractmethod
    def update(self, new_observations: pd.DataFrame) -> Self: ...

    def predict_batch(self, requests: Sequence[ForecastRequest]) -> dict[str, pd.DataFrame]:
        """Forecasts for many requests, keyed by request id. Vectorising models override."""
        return {
            r.id: self.predict(r.horizon, r.future_covariates, r.level, history=r.history)
            for r in requests
        }

    # -- persistence -----------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the model to ``directory`` (created). Subclasses add their files in ``_save``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"alias": self.alias, "class": f"{type(self).__module__}:{type(self).__qualname__}",
                "format_version": self.format_version, "params": self.params, "state": self._state()}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        self._save(directory)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Forecaster:
        """Load any forecaster saved by :meth:`save` (dispatches on the stored class).

        Raises:
            IncompatibleModelError: saved by a gridcast whose layout for this model
                differs from this one (retrain it).
        """
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        module, _, name = meta["class"].partition(":")
        if module.startswith("training.models."):  # saved before the core moved to gridcast/
            module = "gridcast.models." + module.removeprefix("training.models.")
        klass = getattr(importlib.import_module(module), name)
        saved = meta.get("format_version", 0)
        if saved != klass.format_version:
            raise IncompatibleModelError(
                f"{meta.get('alias', name)} model at {directory} has save format {saved}, "
                f"this gridcast reads format {klass.format_version}: retrain it (gridcast train ...)"
            )
        obj = klass(**meta["params"])
        obj._restore(meta["state"], directory)
        return obj

    def _state(self) -> dict[str, Any]:
        """JSON-able fitted state (override and extend)."""
        return {}

    def _save(self, directory: Path) -> None:
        """Write binary state (weights, arrays); JSON state goes through ``_state``."""

    def _restore(self, state: dict[str, Any], directory: Path) -> None:
        """Inverse of ``_state`` + ``_save``."""

    @property
    def is_fitted(self) -> bool:
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))


def get_class(alias: str) -> type[Forecaster]:
    """The forecaster class for an alias (``naive``, ``sarimax``, ``lstm``, ``ensemble``)."""
    try:
        target = REGISTRY[alias]
    except KeyError:
        raise UserInputError(f"unknown model {alias!r}; known: {', '.join(REGISTRY)}", field="model") from None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def make(alias: str, **params: Any) -> Forecaster:
    """A new, unfitted forecaster by alias."""
    return get_class(alias)(**params)


class SeasonalNaive(Forecaster):
    """Same step last week (or last day with ``season_days=1``); also the fallback.

    Intervals: the spread of the seasonal differences in the fitted history,
    widening with the number of seasons ahead (``sigma * sqrt(k)``), as statsforecast's
    ``SeasonalNaive`` does.

    Example:
        >>> import pandas as pd, numpy as np
        >>> idx = pd.date_range("2024-01-01", periods=24 * 21, freq="h", tz="UTC")
        >>> y = pd.DataFrame({"load_mw": np.tile(np.arange(24.0), 21)}, index=idx)
        >>> fc = SeasonalNaive().fit(y).predict(3, level=(80,))
        >>> fc["mean"].tolist()
        [0.0, 1.0, 2.0]
    """

    alias = "naive"

    def __init__(self, season_days: int = 7) -> None:
        super().__init__(season_days=season_days)
        self.season_days = season_days

    def fit(self, history: pd.DataFrame) -> Self:
        freq = infer_freq(history.index)
        self.freq_ = freq
        self.season_length_ = steps_per_day(freq) * self.season_days
        y = history[LOAD].astype(float)
        diffs = (y - y.shift(self.season_length_)).dropna()
        self.sigma_ = float(diffs.std()) if len(diffs) > 1 else float("nan")
        self.tail_ = y.iloc[-self.season_length_:].copy()
        if len(self.tail_) < self.season_length_:
            raise InsufficientDataError(
                f"seasonal naive needs {self.season_length_} steps of history, got {len(self.tail_)}"
            )
        return self

    def update(self, new_observations: pd.DataFrame) -> Self:
        y = pd.concat([self.tail_, new_observations[LOAD].astype(float)])
        y = y[~y.index.duplicated(keep="last")].sort_index()
        self.tail_ = y.iloc[-self.season_length_:]
        return self

    def predict(
        self,
        horizon: int,
        future_covariates: pd.DataFrame | None = None,
        level: Sequence[int] = (80, 95),
        history: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        level = check_level(level)
        tail = self.tail_ if history is None else history[LOAD].astype(float).iloc[-self.season_length_:]
        if len(tail) < self.season_length_ or tail.isna().any():
            # fill holes from one day earlier/later in the window so one missing point
            # does not kill the fallback
            tail = tail.ffill().bfill()
            if len(tail) < self.season_length_ or tail.isna().any():
                raise InsufficientDataError(
                    f"seasonal naive needs {self.season_length_} recent steps, got {tail.notna().sum()}"
                )
        values = tail.to_numpy()
        steps = np.arange(horizon)
        mean = values[steps % self.season_length_]
        k = steps // self.season_length_ + 1
        out = pd.DataFrame({"mean": mean}, index=future_index(tail.index[-1], self.freq_, horizon))
        sigma = self.sigma_ if np.isfinite(self.sigma_) else 0.0
        from scipy.stats import norm

        for lv in sorted(level):
            z = float(norm.ppf(0.5 + lv / 200))
            out[f"lo-{lv}"] = mean - z * sigma * np.sqrt(k)
            out[f"hi-{lv}"] = mean + z * sigma * np.sqrt(k)
        return out[interval_columns(level)]

    def _state(self) -> dict[str, Any]:
        return {
            "freq_": self.freq_,
            "season_length_": self.season_length_,
            "sigma_": self.sigma_,
            "tail_index": [t.isoformat() for t in self.tail_.index],
            "tail_values": self.tail_.tolist(),
        }

    def _restore(self, state: dict[str, Any], directory: Path) -> None:
        self.freq_ = state["freq_"]
        self.season_length_ = state["season_length_"]
        self.sigma_ = state["sigma_"]
        self.tail_ = pd.Series(
            state["tail_values"],
            index=pd.DatetimeIndex(state["tail_index"]).tz_convert("UTC").as_unit("ns"),
            name=LOAD,
        )
