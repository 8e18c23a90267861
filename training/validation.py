"""A trained model's validation: day-ahead forecasts over held-out days, and their scores.

:func:`validate_forecaster` is what ``gridcast train`` (and ``gridcast retrain``) record
in a saved model's ``metadata["validation"]``. One forecast per held-out day, issued
from the history before it with the observed weather of the target day, is scored
with the backtest's own scoring (:func:`training.backtest_report.score`: one MAPE in
the code base), at three grains:

* overall — ``mape``, ``mae``, ``rmse``, ``bias`` (forecast − actual), ``coverage_L``
  (a fraction, 0–1) and ``width_L`` per interval level, ``n_points``;
* ``by_lead`` — MAPE, MAE, bias and coverage per lead (steps after the origin), or
  per band of ``band_steps`` leads when the horizon has more than
  :data:`MAX_LEAD_POINTS` steps (15-minute data);
* ``by_hour`` — MAPE per hour of the day, in the region's local time (``tz``; UTC
  when the time zone is unknown).

When the data has the operator's own forecast (the ``reference_mw`` column, e.g.
Spain's), ``reference`` holds its error over exactly the hours the model was scored on
where the reference has a value (``mape``, ``mae``, ``bias``, ``n``, ``by_hour``), and
the model's MAPE over those same hours (``model_mape``), so the two compare like for
like. Every list has at most 48 (lead) or 24 (hour) entries: the block stays small.

Example:
    >>> import pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    >>> rows = pd.DataFrame({"timestamp": idx, "origin": [0, 0, 1, 1], "lead": [1, 2, 1, 2],
    ...                      "actual": [100.0, 200.0, 100.0, 200.0], "mean": [110.0, 200.0, 90.0, 220.0]})
    >>> v = validation_metrics(rows, levels=(), tz="UTC")
    >>> v["mape"], v["by_lead"]["mape"], v["by_hour"]["mape"][:3]
    (7.5, [10.0, 5.0], [10.0, 0.0, 10.0])
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from gridcast.errors import InsufficientDataError
from gridcast.schema import LOAD, REFERENCE, WEATHER, infer_freq, steps_per_day
from training.backtest_report import score

if TYPE_CHECKING:
    from gridcast.models.base import Forecaster

log = logging.getLogger(__name__)

#: validation forecasts are day-ahead: this many days per forecast
VAL_HORIZON_DAYS = 1
#: longest ``by_lead`` list; longer horizons are scored in bands of leads
MAX_LEAD_POINTS = 48
#: interval levels validation always scores besides the settings' (issue 16's coverage target is 90 %)
ALWAYS_LEVELS = (90,)
#: decimals kept in the metadata (MAPE in %, MW, coverage fractions): small, still exact enough
DECIMALS = 4


def validation_levels(levels: Sequence[int]) -> tuple[int, ...]:
    """The settings' interval levels plus :data:`ALWAYS_LEVELS`, sorted."""
    return tuple(sorted({*map(int, levels), *ALWAYS_LEVELS}))


def validation_forecasts(
    forecaster: Forecaster, frame: pd.DataFrame, *, split: pd.Timestamp, levels: Sequence[int]
) -> pd.DataFrame:
    """Day-ahead forecasts over ``frame[split:]`` of a forecaster fitted on ``frame[:split)``.

    One forecast per day, issued at ``split + k days`` from the history before it,
    with the observed weather of the target day as future covariates.

    Returns:
        One row per forecast step: ``timestamp`` (UTC), ``origin`` (the forecast's
        number), ``lead`` (1-based), ``actual``, ``mean``, ``lo-L`` / ``hi-L`` per level,
        and ``reference`` when the frame has the operator's forecast.

    Raises:
        InsufficientDataError: no origin could be forecast.
    """
    freq = infer_freq(frame.index)
    horizon = steps_per_day(freq) * VAL_HORIZON_DAYS
    weather_cols = [c for c in WEATHER if c in frame.columns]
    parts = []
    origin_pos = int(frame.index.searchsorted(split))
    while origin_pos + horizon <= len(frame):
        history = frame.iloc[:origin_pos]
        target = frame.iloc[origin_pos:origin_pos + horizon]
        future = target[weather_cols] if weather_cols else None
        try:
            fc = forecaster.predict(horizon, future_covariates=future, level=levels, history=history)
        except InsufficientDataError as exc:
            log.warning("validation origin %s skipped: %s", frame.index[origin_pos], exc.detail)
        else:
            part = fc.reindex(target.index)
            part.insert(0, "actual", target[LOAD].to_numpy(float))
            part.insert(0, "lead", np.arange(1, horizon + 1))
            part.insert(0, "origin", len(parts))
            if REFERENCE in target:
                part["reference"] = target[REFERENCE].to_numpy(float)
            parts.append(part)
        origin_pos += horizon
    if not parts:
        raise InsufficientDataError("no validation forecast could be made; use more data or fewer --val-days")
    rows = pd.concat(parts)
    rows.index.name = "timestamp"
    return rows.reset_index()


def validation_metrics(rows: pd.DataFrame, *, levels: Sequence[int], tz: str | None) -> dict[str, Any]:
    """The validation block for :func:`validation_forecasts`' rows (see the module docstring)."""
    scored = rows[rows["actual"].notna() & rows["mean"].notna()]
    overall = _fractions(score(scored, levels))
    horizon = int(rows["lead"].max())
    out: dict[str, Any] = {
        **{k: _round(v) for k, v in overall.items() if k != "n"},
        "n_points": int(overall.get("n", 0)),
        "n_origins": int(rows["origin"].nunique()),
        "horizon": horizon,
        "by_lead": _by_lead(scored, levels, horizon),
        "by_hour": _by_hour(scored, tz),
    }
    if "reference" in scored and scored["reference"].notna().any():
        same = scored[scored["reference"].notna()]
        ref = same.assign(mean=same["reference"])
        ref_overall = score(ref, ())
        out["reference"] = {
            "mape": _round(ref_overall["mape"]), "mae": _round(ref_overall["mae"]),
            "bias": _round(ref_overall["bias"]), "n": int(ref_overall["n"]),
            "model_mape": _round(score(same, ())["mape"]),
            "by_hour": _by_hour(ref, tz)["mape"],
        }
    return out


def validate_forecaster(
    forecaster: Forecaster, frame: pd.DataFrame, *, split: pd.Timestamp, levels: Sequence[int], tz: str | None = None
) -> dict[str, Any]:
    """Day-ahead validation of a forecaster fitted on ``frame[:split)``: the metadata's ``validation`` block."""
    rows = validation_forecasts(forecaster, frame, split=split, levels=levels)
    return validation_metrics(rows, levels=levels, tz=tz)


def _by_lead(scored: pd.DataFrame, levels: Sequence[int], horizon: int) -> dict[str, Any]:
    band = max(1, math.ceil(horizon / MAX_LEAD_POINTS))
    first = (scored["lead"] - 1) // band * band + 1
    keys = ["mape", "mae", "bias", *[f"coverage_{lv}" for lv in levels]]
    out: dict[str, Any] = {"band_steps": band, "lead": [], "n": [], **{k: [] for k in keys}}
    for lead, group in scored.groupby(first):
        s = _fractions(score(group, levels))
        out["lead"].append(int(lead))
        out["n"].append(int(s.get("n", 0)))
        for k in keys:
            out[k].append(_round(s.get(k)))
    return out


def _by_hour(scored: pd.DataFrame, tz: str | None) -> dict[str, Any]:
    zone = tz or "UTC"
    hours = pd.DatetimeIndex(scored["timestamp"]).tz_convert(ZoneInfo(zone)).hour
    mape: list[float | None] = [None] * 24
    n = [0] * 24
    for hour, group in scored.groupby(np.asarray(hours)):
        s = score(group, ())
        mape[int(hour)], n[int(hour)] = _round(s.get("mape")), int(s.get("n", 0))
    return {"tz": zone, "mape": mape, "n": n}


def _fractions(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scorer's coverage percentages as the fractions the metadata has always stored."""
    return {k: (v / 100 if k.startswith("coverage_") else v) for k, v in metrics.items()}


def _round(value: Any) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), DECIMALS)
