"""The validation block ``gridcast train`` records: overall, by lead, by hour, and the reference's error."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gridcast.models.base import SeasonalNaive
from gridcast.schema import LOAD, REFERENCE
from gridcast.synthetic import generate
from training.train_cli import regular_frame
from training.validation import MAX_LEAD_POINTS, validate_forecaster, validation_metrics

VAL_DAYS = 7


def _frame(freq: str = "1h", days: int = 42) -> pd.DataFrame:
    df, _ = generate(days=days, freq=freq, regions=1, seed=11, country="ES")
    return regular_frame(df, "region-1")


def _validate(frame: pd.DataFrame, tz: str | None = "Europe/Madrid") -> dict:
    split = frame.index[-1] + pd.Timedelta(frame.index.freq) - pd.Timedelta(days=VAL_DAYS)
    naive = SeasonalNaive().fit(frame[frame.index < split])
    return validate_forecaster(naive, frame, split=split, levels=(80, 90), tz=tz)


def test_naive_scores_match_a_hand_computation_at_every_grain() -> None:
    frame = _frame()
    v = _validate(frame)
    y = frame[LOAD].to_numpy(float)
    n_val = VAL_DAYS * 24
    # the seasonal naive forecasts each held-out step with the same step a week before
    actual, forecast = y[-n_val:], y[-n_val - 168:-168]
    ape = np.abs(forecast - actual) / actual * 100
    assert v["mape"] == pytest.approx(ape.mean(), abs=1e-3)
    assert v["bias"] == pytest.approx((forecast - actual).mean(), abs=1e-3)  # forecast − actual
    assert v["n_points"] == n_val and v["n_origins"] == VAL_DAYS and v["horizon"] == 24

    by_lead = v["by_lead"]
    assert by_lead["band_steps"] == 1 and by_lead["lead"] == list(range(1, 25))
    assert by_lead["mape"] == pytest.approx(ape.reshape(VAL_DAYS, 24).mean(axis=0), abs=1e-3)
    assert all(0 <= c <= 1 for c in by_lead["coverage_90"]) and len(by_lead["coverage_80"]) == 24

    by_hour = v["by_hour"]
    local_hours = frame.index[-n_val:].tz_convert("Europe/Madrid").hour
    expected = [ape[local_hours == h].mean() for h in range(24)]
    assert by_hour["tz"] == "Europe/Madrid" and sum(by_hour["n"]) == n_val
    assert by_hour["mape"] == pytest.approx(expected, abs=1e-3)
    assert "reference" not in v  # the synthetic data has no operator forecast


def test_hours_are_local_to_the_region_else_utc() -> None:
    idx = pd.date_range("2024-01-10", periods=48, freq="h", tz="UTC")
    actual = np.full(48, 100.0)
    mean = np.where(idx.hour == 23, 150.0, 100.0)  # wrong only at 23:00 UTC
    rows = pd.DataFrame({"timestamp": idx, "origin": np.repeat([0, 1], 24), "lead": np.tile(np.arange(1, 25), 2),
                         "actual": actual, "mean": mean})
    local = validation_metrics(rows, levels=(), tz="Asia/Ho_Chi_Minh")["by_hour"]  # UTC+7
    assert local["mape"][6] == pytest.approx(50.0) and sum(local["mape"]) == pytest.approx(50.0)
    utc = validation_metrics(rows, levels=(), tz=None)["by_hour"]
    assert utc["tz"] == "UTC" and utc["mape"][23] == pytest.approx(50.0)


def test_reference_is_scored_over_the_same_hours() -> None:
    frame = _frame()
    ref = frame[LOAD] * 1.02
    ref.iloc[-3 * 24:] = np.nan  # the operator's forecast is missing for the last 3 days
    v = _validate(frame.assign(**{REFERENCE: ref}))
    r = v["reference"]
    assert r["n"] == (VAL_DAYS - 3) * 24
    assert r["mape"] == pytest.approx(2.0, abs=1e-3)
    assert r["by_hour"] == pytest.approx([2.0] * 24, abs=1e-3)
    assert r["bias"] > 0  # forecast − actual: the reference is 2 % high
    # the model over exactly those hours, not over all of them
    y = frame[LOAD].to_numpy(float)
    n_val = VAL_DAYS * 24
    actual, forecast = y[-n_val:-3 * 24], y[-n_val - 168:-168 - 3 * 24]
    assert r["model_mape"] == pytest.approx((np.abs(forecast - actual) / actual).mean() * 100, abs=1e-3)


def test_long_horizons_are_banded_and_the_block_stays_small() -> None:
    v = _validate(_frame("15min", days=28), tz=None)
    by_lead = v["by_lead"]
    assert v["horizon"] == 96 and by_lead["band_steps"] == 2
    assert len(by_lead["lead"]) == MAX_LEAD_POINTS and by_lead["lead"][:3] == [1, 3, 5]
    text = json.dumps(v, allow_nan=False)  # plain JSON, no NaN
    assert len(text) < 8_000
