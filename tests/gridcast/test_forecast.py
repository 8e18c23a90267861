"""Unit tests of the request → core → response path (no HTTP, no BentoML, no Redis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from service.core import ForecastCore, LocalModels, ModelCatalog, ServedModel, history_frame
from service.schemas import ForecastQuery
from gridcast.errors import InsufficientDataError, ModelNotFoundError, UserInputError
from gridcast.models.base import SeasonalNaive
from gridcast.settings import Settings


def observations(frame: pd.DataFrame) -> list[dict]:
    return [
        {"timestamp": ts.isoformat(), "load_mw": float(r.load_mw), "temperature_c": float(r.temperature_c)}
        for ts, r in frame.iterrows()
    ]


@pytest.fixture(scope="module")
def local(region_history: pd.DataFrame) -> LocalModels:
    """Weekly naive served as 'naive' and, with different metadata, as a stand-in 'sarimax'."""
    weekly = SeasonalNaive().fit(region_history)
    daily = SeasonalNaive(season_days=1).fit(region_history)
    catalog = ModelCatalog([
        ServedModel("region-1", "naive", "gridcast-naive-region-1:v1", {"val_mape": 5.0, "freq": "1h"}),
        ServedModel("region-1", "sarimax", "gridcast-sarimax-region-1:v1", {"val_mape": 3.0, "freq": "1h"}),
    ])
    return LocalModels(catalog, {("region-1", "naive"): weekly, ("region-1", "sarimax"): daily})


@pytest.fixture
def core(local: LocalModels) -> ForecastCore:
    return ForecastCore(settings=Settings(), models=local, state=None, cache=None)


def test_forecast_from_request_history_has_points_and_intervals(core, region_history):
    hist = region_history.iloc[-24 * 14:]
    q = ForecastQuery(region="region-1", model="naive", horizon=24, level=[95, 80], history=observations(hist))
    (res,) = core.forecast([q])
    assert res["model"] == "naive" and not res["fallback"] and res["history_source"] == "request"
    assert len(res["points"]) == 24
    first = res["points"][0]
    assert pd.Timestamp(first["timestamp"]) == hist.index[-1] + pd.Timedelta("1h")
    # weekly naive: the mean repeats the value one week before the step
    assert first["mean"] == pytest.approx(hist["load_mw"].iloc[-168])
    assert first["intervals"]["80"]["lower"] > first["intervals"]["95"]["lower"]
    assert (first["lower"], first["upper"]) == (first["intervals"]["95"]["lower"], first["intervals"]["95"]["upper"])
    assert res["level"] == [80, 95]


def test_best_picks_lowest_validation_mape(core, region_history):
    q = ForecastQuery(region="region-1", model="best", horizon=3, history=observations(region_history.iloc[-200:]))
    (res,) = core.forecast([q])
    assert res["model"] == "sarimax" and res["requested_model"] == "best"


def test_each_query_gets_its_own_history(core, region_history):
    a = region_history.iloc[-300:]
    b = a.assign(load_mw=a["load_mw"] * 2)
    qa = ForecastQuery(region="region-1", model="naive", horizon=5, history=observations(a))
    qb = ForecastQuery(region="region-1", model="naive", horizon=5, history=observations(b))
    ra, rb = core.forecast([qa, qb])
    assert [p["mean"] * 2 for p in ra["points"]] == pytest.approx([p["mean"] for p in rb["points"]])


def test_short_history_falls_back_to_daily_naive_and_says_why(core, region_history):
    hist = region_history.iloc[-48:]  # two days: too short for the weekly model
    q = ForecastQuery(region="region-1", model="naive", horizon=6, history=observations(hist))
    (res,) = core.forecast([q])
    assert res["fallback"] and "168" in res["fallback_reason"]
    assert res["model_version"] == "seasonal-naive-daily"
    assert res["points"][0]["mean"] == pytest.approx(hist["load_mw"].iloc[-24])


def test_history_shorter_than_a_day_is_refused(core, region_history):
    q = ForecastQuery(region="region-1", model="naive", horizon=6, history=observations(region_history.iloc[-5:]))
    with pytest.raises(InsufficientDataError):
        core.forecast([q])


def test_without_history_or_state_the_model_forecasts_from_its_own_tail(core, region_history):
    (res,) = core.forecast([ForecastQuery(region="region-1", model="naive", horizon=2)])
    assert res["history_source"] == "model"
    assert pd.Timestamp(res["points"][0]["timestamp"]) == region_history.index[-1] + pd.Timedelta("1h")


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        (dict(region="atlantis"), ModelNotFoundError, "region"),
        (dict(model="lstm"), ModelNotFoundError, "model"),
        (dict(horizon=200), UserInputError, "horizon"),
        (dict(level=[80, 80]), UserInputError, "level"),
        (dict(level=[100]), UserInputError, "level"),
    ],
    ids=["unknown-region", "model-not-served", "horizon-over-settings", "repeated-level", "level-100"],
)
def test_bad_queries_name_their_field(core, change, error, field):
    q = ForecastQuery(**{"region": "region-1", "model": "naive", "horizon": 3, **change})
    with pytest.raises(error) as info:
        core.forecast([q])
    assert info.value.field == field


def _hist(region_history, mutate):
    obs = observations(region_history.iloc[-30:])
    mutate(obs)
    return ForecastQuery(region="region-1", model="naive", horizon=3, history=obs)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda o: o.__setitem__(5, dict(o[5], timestamp="2024-01-01T00:30:00+00:00")), "history[5].timestamp"),
        (lambda o: o.__setitem__(5, o[4]), "history[5].timestamp"),
        (lambda o: o.pop(7), "history[7].timestamp"),
        (lambda o: o.reverse(), "history[1].timestamp"),
    ],
    ids=["off-grid", "duplicate", "gap", "decreasing"],
)
def test_history_must_be_increasing_on_the_grid(region_history, mutate, field):
    q = _hist(region_history, mutate)
    with pytest.raises(UserInputError) as info:
        history_frame(q, step=pd.Timedelta("1h"), max_points=1000)
    assert info.value.field == field


def test_history_longer_than_the_setting_is_refused(core, region_history):
    q = ForecastQuery(region="region-1", model="naive", horizon=3, history=observations(region_history.iloc[-50:]))
    small = ForecastCore(settings=Settings(max_history_points=20), models=core.local, state=None, cache=None)
    with pytest.raises(UserInputError, match="at most 20") as info:
        small.forecast([q])
    assert info.value.field == "history"


def test_batch_errors_point_at_the_request(core):
    qs = [ForecastQuery(region="region-1", model="naive", horizon=3),
          ForecastQuery(region="region-1", model="naive", horizon=169)]
    with pytest.raises(UserInputError) as info:
        core.forecast(qs)
    assert info.value.field == "requests[1].horizon"


def test_nan_history_is_refused_by_the_schema():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ForecastQuery(region="r", horizon=1, history=[{"timestamp": "2024-01-01T00:00:00Z", "load_mw": np.nan}])


def test_state_store_history_is_used_unless_it_is_the_models_own_tail(local, region_history):
    from gridcast.state import InMemoryStateStore

    end = region_history.index[-1]
    catalog = ModelCatalog([
        ServedModel("region-1", "naive", "gridcast-naive-region-1:v1", {"freq": "1h", "context_end": end.isoformat()}),
    ])
    models = LocalModels(catalog, {("region-1", "naive"): local.forecasters[("region-1", "naive")]})
    q = ForecastQuery(region="region-1", model="naive", horizon=2)

    seeded = InMemoryStateStore()
    seeded.add_observations("region-1", region_history.iloc[-200:][["load_mw"]])
    (res,) = ForecastCore(settings=Settings(), models=models, state=seeded, cache=None).forecast([q])
    assert res["history_source"] == "model" and pd.Timestamp(res["origin"]) == end

    replay = InMemoryStateStore()  # a replay of older data: forecast after ITS last point
    replay.add_observations("region-1", region_history.iloc[-400:-100][["load_mw"]])
    (res,) = ForecastCore(settings=Settings(), models=models, state=replay, cache=None).forecast([q])
    assert res["history_source"] == "state" and pd.Timestamp(res["origin"]) == region_history.index[-101]
