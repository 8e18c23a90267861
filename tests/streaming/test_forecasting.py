"""The bridge's forecasters without Kafka: the in-process core over a real model store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from streaming.forecasting import InProcessForecaster, Job, NaiveForecaster, make_forecaster
from gridcast.errors import UserInputError
from gridcast.models.base import SeasonalNaive
from gridcast.settings import Settings


def history(days: int, start: str = "2024-03-01") -> pd.DataFrame:
    idx = pd.date_range(start, periods=24 * days, freq="h", tz="UTC", name="timestamp")
    load = 500 + 100 * np.sin(np.arange(len(idx)) * 2 * np.pi / 24)
    return pd.DataFrame({"load_mw": load, "temperature_c": 20.0}, index=idx)


async def test_naive_forecaster_weekly_daily_and_too_short():
    f = NaiveForecaster(Settings())
    week, day, short = history(14), history(2), history(1).iloc[:10]
    jobs = [Job("w", 24, (80, 95)), Job("d", 6, (95,)), Job("s", 6, (80,)), Job("none", 6, (80,))]
    w, d, s, none = await f.forecast(jobs, {"w": week, "d": day, "s": short})
    assert w["model_version"] == "seasonal-naive-weekly" and len(w["points"]) == 24
    # same hour last week: the forecast repeats the last week's values
    assert [p["mean"] for p in w["points"]] == pytest.approx(week["load_mw"].iloc[-168:-144].tolist())
    assert d["model_version"] == "seasonal-naive-daily" and d["level"] == [95]
    assert s["error"] == "insufficient_data" and none["error"] == "insufficient_data"


@pytest.mark.parametrize("days,season_days", [(14, 7), (3, 1)], ids=["weekly", "daily"])
async def test_fast_naive_equals_the_contract_seasonal_naive(days, season_days):
    rng = np.random.default_rng(3)
    h = history(days)
    h["load_mw"] += rng.normal(0, 10, len(h))
    (fast,) = await NaiveForecaster(Settings()).forecast([Job("x", 30, (95, 80))], {"x": h})
    ref = SeasonalNaive(season_days=season_days).fit(h).predict(30, level=(80, 95))
    assert [p["timestamp"] for p in fast["points"]] == [t.isoformat() for t in ref.index]
    assert [p["mean"] for p in fast["points"]] == pytest.approx(ref["mean"].tolist())
    for lv in (80, 95):
        assert [p["intervals"][str(lv)]["lower"] for p in fast["points"]] == pytest.approx(ref[f"lo-{lv}"].tolist())
        assert [p["intervals"][str(lv)]["upper"] for p in fast["points"]] == pytest.approx(ref[f"hi-{lv}"].tolist())
    assert [p["upper"] for p in fast["points"]] == pytest.approx(ref["hi-95"].tolist())


async def test_naive_forecaster_fills_a_gap_in_the_state():
    f = NaiveForecaster(Settings())
    h = history(8).drop(history(8).index[100:103])  # three missing hours
    (result,) = await f.forecast([Job("g", 12, (80,))], {"g": h})
    assert "error" not in result and np.isfinite([p["mean"] for p in result["points"]]).all()


@pytest.mark.slow
async def test_inprocess_uses_the_served_model_and_falls_back_for_unknown_regions(bento_home):
    from gridcast.store import save_model

    h = history(21)
    saved = save_model(SeasonalNaive().fit(h), region="north", metadata={"validation": {"mape": 5.0}})
    f = InProcessForecaster(Settings())
    served, unknown = await f.forecast(
        [Job("north", 24, (80, 95)), Job("south", 24, (80, 95))], {"north": h, "south": h}
    )
    assert served["model"] == "naive" and served["model_version"] == saved.tag and not served["fallback"]
    assert served["history_source"] == "state" and pd.Timestamp(served["origin"]) == h.index[-1]
    assert unknown["fallback"] and "no model is served for region 'south'" in unknown["fallback_reason"]
    assert [p["mean"] for p in served["points"]] == pytest.approx([p["mean"] for p in unknown["points"]])


def test_unknown_forecast_via_is_a_user_error():
    with pytest.raises(UserInputError, match="forecast_via must be one of"):
        make_forecaster(Settings(forecast_via="carrier-pigeon"))
