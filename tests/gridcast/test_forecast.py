"""Unit tests of the query → plan → batched model call → response path (no HTTP, no Redis)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from gridcast.catalog import ModelCatalog, ServedModel
from gridcast.errors import InsufficientDataError, ModelNotFoundError, UserInputError
from gridcast.forecast import ForecastCore, ModelRunner, Query, on_grid, points_from_rows
from gridcast.models.base import SeasonalNaive
from gridcast.schema import LOAD, WEATHER
from gridcast.settings import Settings


def observations(frame: pd.DataFrame) -> list[dict]:
    return [
        {"timestamp": ts.isoformat(), "load_mw": float(r.load_mw), "temperature_c": float(r.temperature_c)}
        for ts, r in frame.iterrows()
    ]


def ForecastQuery(*, history=None, weather=None, level=(80, 95), **fields) -> Query:  # noqa: N802 (reads like the wire)
    """A core query as an edge would build it (object-per-point history)."""
    return Query(**fields, level=tuple(level),
                 history=points_from_rows(history, (LOAD, *WEATHER)) if history is not None else None,
                 weather=points_from_rows(weather, WEATHER) if weather is not None else None)


@pytest.fixture(scope="module")
def local(region_history: pd.DataFrame) -> ModelRunner:
    """Weekly naive served as 'naive' and, with different metadata, as a stand-in 'sarimax'."""
    weekly = SeasonalNaive().fit(region_history)
    daily = SeasonalNaive(season_days=1).fit(region_history)
    catalog = ModelCatalog([
        ServedModel("region-1", "naive", "gridcast-naive-region-1:v1", {"val_mape": 5.0, "freq": "1h"}),
        ServedModel("region-1", "sarimax", "gridcast-sarimax-region-1:v1", {"val_mape": 3.0, "freq": "1h"}),
    ])
    return ModelRunner(catalog, {("region-1", "naive"): weekly, ("region-1", "sarimax"): daily})


@pytest.fixture
def core(local: ModelRunner) -> ForecastCore:
    return ForecastCore(settings=Settings(), catalog=local.catalog, runner=local)


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
    assert res["model_version"] == "seasonal-naive-profile"
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
        on_grid(q.history, 3600, "history", max_points=1000)
    assert info.value.field == field


def test_history_longer_than_the_setting_is_refused(core, region_history):
    q = ForecastQuery(region="region-1", model="naive", horizon=3, history=observations(region_history.iloc[-50:]))
    small = ForecastCore(settings=Settings(max_history_points=20), catalog=core.catalog, runner=core.runner)
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

    from gridcast.wire import ForecastQuery as WireQuery

    with pytest.raises(ValidationError):
        WireQuery(region="r", horizon=1, history=[{"timestamp": "2024-01-01T00:00:00Z", "load_mw": np.nan}])


def test_state_store_history_is_used_unless_it_is_the_models_own_tail(local, region_history):
    from gridcast.state import InMemoryStateStore

    end = region_history.index[-1]
    catalog = ModelCatalog([
        ServedModel("region-1", "naive", "gridcast-naive-region-1:v1", {"freq": "1h", "context_end": end.isoformat()}),
    ])
    models = ModelRunner(catalog, {("region-1", "naive"): local.forecasters[("region-1", "naive")]})
    q = ForecastQuery(region="region-1", model="naive", horizon=2)

    seeded = InMemoryStateStore()
    seeded.add_observations("region-1", region_history.iloc[-200:][["load_mw"]])
    (res,) = ForecastCore(settings=Settings(), catalog=catalog, runner=models, state=seeded).forecast([q])
    assert res["history_source"] == "model" and pd.Timestamp(res["origin"]) == end

    replay = InMemoryStateStore()  # a replay of older data: forecast after ITS last point
    replay.add_observations("region-1", region_history.iloc[-400:-100][["load_mw"]])
    (res,) = ForecastCore(settings=Settings(), catalog=catalog, runner=models, state=replay).forecast([q])
    assert res["history_source"] == "state" and pd.Timestamp(res["origin"]) == region_history.index[-101]


# ---- the cache, the payload forms, the guard, batching -----------------------------------


def test_a_cache_hit_returns_the_bytes_of_the_miss_that_filled_it(local, region_history):
    import orjson

    from gridcast.cache import InMemoryTTLCache
    from gridcast.forecast import hit

    core = ForecastCore(settings=Settings(), catalog=local.catalog, runner=local, cache=InMemoryTTLCache())
    q = ForecastQuery(region="region-1", model="naive", horizon=24, history=observations(region_history.iloc[-200:]))
    (plan,) = core.plan([q])
    assert plan.cached is None and plan.key is not None
    (answer,) = local.run([plan])
    body = core.respond(plan, answer)
    doc = orjson.loads(body)
    (again,) = core.plan([q])
    assert again.cached == body  # the stored bytes, as they were
    served = orjson.loads(hit(again.cached))
    assert served.pop("cached") is True and doc.pop("cached") is False
    assert served == doc
    other = ForecastQuery(region="region-1", model="naive", horizon=24,
                          history=observations(region_history.iloc[-201:-1]))
    assert core.plan([other])[0].cached is None  # another history is another forecast


def test_columnar_and_object_payloads_give_the_same_forecast(core, region_history):
    from gridcast.wire import ForecastQuery as WireQuery

    hist = region_history.iloc[-200:]
    objects = WireQuery(region="region-1", model="naive", horizon=12, history=observations(hist))
    columnar = WireQuery(region="region-1", model="naive", horizon=12, history={
        "start": hist.index[0].isoformat(), "step": "1h",
        "load_mw": hist["load_mw"].tolist(), "temperature_c": hist["temperature_c"].tolist()})
    a, b = core.forecast([objects.to_query(), columnar.to_query()])
    for doc in (a, b):
        doc.pop("issued_at")
    assert a == b and not a["fallback"]


def test_columnar_payload_with_unequal_columns_is_refused():
    from gridcast.wire import ForecastQuery as WireQuery

    q = WireQuery(region="r", horizon=1, history={"start": "2024-01-01T00:00:00Z", "load_mw": [1.0, 2.0],
                                                  "temperature_c": [3.0]})
    with pytest.raises(UserInputError, match="equal lengths") as info:
        q.to_query()
    assert info.value.field == "history"


class _Exploding(SeasonalNaive):
    """A member gone wrong: forecasts of 10^11 MW (as the ensemble once did around a clock change)."""

    def predict_series(self, requests):
        out = super().predict_series(requests)
        for fc in out:
            fc.mean[:] = 3e11
        return out


def test_an_implausible_forecast_never_leaves_the_core(region_history):
    lo, hi = float(region_history["load_mw"].min()), float(region_history["load_mw"].max())
    band = {"lo": lo - (hi - lo), "hi": hi + (hi - lo)}
    catalog = ModelCatalog([
        ServedModel("region-1", "lstm", "gridcast-lstm-region-1:v1", {"freq": "1h", "plausible_band": band}),
        ServedModel("region-1", "naive", "gridcast-naive-region-1:v1", {"freq": "1h", "plausible_band": band}),
    ])
    runner = ModelRunner(catalog, {("region-1", "lstm"): _Exploding().fit(region_history),
                                   ("region-1", "naive"): SeasonalNaive().fit(region_history)})
    core = ForecastCore(settings=Settings(), catalog=catalog, runner=runner)
    q = ForecastQuery(region="region-1", model="lstm", horizon=24, history=observations(region_history.iloc[-200:]))
    (res,) = core.forecast([q])
    assert res["fallback"] and "implausible" in res["fallback_reason"]
    assert res["model"] == "naive" and res["model_version"] == "gridcast-naive-region-1:v1"
    assert max(p["mean"] for p in res["points"]) <= hi


def test_batched_lstm_answers_equal_single_forecasts(region_history):
    from gridcast.models.lstm import LSTMForecaster

    lstm = LSTMForecaster(quick=True, epochs=1, verbose=0).fit(region_history.iloc[:-300])
    catalog = ModelCatalog([ServedModel("region-1", "lstm", "gridcast-lstm-region-1:v1", {"freq": "1h"})])
    core = ForecastCore(settings=Settings(), catalog=catalog, runner=ModelRunner(catalog, {("region-1", "lstm"): lstm}))
    queries = [ForecastQuery(region="region-1", model="lstm", horizon=h, level=lv,
                             history=observations(region_history.iloc[-700 + k * 17: -300 + k * 17]))
               for k, (h, lv) in enumerate([(24, (80, 95)), (168, (90,)), (1, (50, 99)), (48, (80,))])]
    batched = core.forecast(queries)
    for q, got in zip(queries, batched, strict=True):
        (alone,) = core.forecast([q])
        assert not got["fallback"] and got["model"] == "lstm"
        for a, b in zip(got["points"], alone["points"], strict=True):
            assert a["timestamp"] == b["timestamp"]
            assert a["mean"] == pytest.approx(b["mean"], abs=1e-6)
            for key, bounds in a["intervals"].items():
                assert bounds["lower"] == pytest.approx(b["intervals"][key]["lower"], abs=1e-6)
                assert bounds["upper"] == pytest.approx(b["intervals"][key]["upper"], abs=1e-6)


async def test_the_batcher_merges_concurrent_submissions_and_sheds_past_its_queue():
    import asyncio
    import threading

    from gridcast.batching import Batcher
    from gridcast.errors import OverloadedError

    calls: list[list[int]] = []
    release = threading.Event()

    def run(items: list[int]) -> list[int]:
        calls.append(list(items))
        release.wait(5)
        return [x * 10 for x in items]

    batcher = Batcher(run, max_batch=8, max_queue=6)
    first = asyncio.create_task(batcher.submit([1]))  # occupies the model
    await asyncio.sleep(0.05)
    waiting = [asyncio.create_task(batcher.submit([i, i + 100])) for i in (2, 3, 4)]
    await asyncio.sleep(0.05)
    assert batcher.queued == 6
    with pytest.raises(OverloadedError) as info:
        await batcher.submit([9])  # refused at once: the queue is full
    assert info.value.http_status == 503 and info.value.retryable
    release.set()
    assert await first == [10]
    assert [await w for w in waiting] == [[20, 1020], [30, 1030], [40, 1040]]
    assert calls == [[1], [2, 102, 3, 103, 4, 104]]  # the three waiting submissions ran as one batch


def test_a_one_step_forecast_through_the_frame_api_keeps_its_step(region_history):
    """The default predict_series (SARIMAX, ensemble) on a horizon of 1: the step comes from the model."""
    from gridcast.models.base import Forecaster, SeriesRequest, future_index, interval_columns

    class FrameOnly(Forecaster):
        alias = "frame-only"

        def fit(self, history):
            self.freq_, self.last_ = "1h", history.index[-1]
            return self

        def update(self, new_observations):
            return self

        def predict(self, horizon, future_covariates=None, level=(80, 95), history=None):
            last = self.last_ if history is None else history.index[-1]
            index = future_index(last, self.freq_, horizon)
            return pd.DataFrame({c: 1.0 for c in interval_columns(level)}, index=index)

    model = FrameOnly().fit(region_history)
    (fc,) = model.predict_series([SeriesRequest(1)])
    assert fc.step == 3600 and len(fc.mean) == 1
    assert fc.start == int(region_history.index[-1].value // 10**9) + 3600


def test_a_cache_hit_from_the_state_reads_no_history(local, region_history):
    """The README request: the state's last timestamp finds the cached answer; the history is read on a miss only."""
    from gridcast.cache import InMemoryTTLCache
    from gridcast.state import InMemoryStateStore

    class CountingState(InMemoryStateStore):
        reads = 0

        def history(self, region, n=None):
            CountingState.reads += 1
            return super().history(region, n)

    state = CountingState()
    state.add_observations("region-1", region_history.iloc[-400:-100][["load_mw"]])
    core = ForecastCore(settings=Settings(), catalog=local.catalog, runner=local, state=state,
                        cache=InMemoryTTLCache())
    q = ForecastQuery(region="region-1", model="naive", horizon=6)
    (first,) = core.forecast([q])
    assert first["history_source"] == "state" and not first["cached"] and CountingState.reads == 1
    (second,) = core.forecast([q])
    assert second["cached"] and CountingState.reads == 1  # answered from the last timestamp alone
    state.add_observations("region-1", region_history.iloc[-100:-99][["load_mw"]])
    (third,) = core.forecast([q])  # a new point: a new origin, a miss, one more read
    assert not third["cached"] and CountingState.reads == 2
    assert pd.Timestamp(third["origin"]) == region_history.index[-100]


def _render_point_by_point(plan, answer, issued_at) -> dict:
    """The response document built the plain way: one dict per point (the wire format's spec)."""
    from gridcast.series import iso

    fc, level = answer.forecast, list(plan.level)
    widest = max(level)
    points = []
    for i in range(len(fc.mean)):
        points.append({
            "timestamp": iso(fc.start + i * fc.step),
            "mean": float(fc.mean[i]),
            "lower": float(fc.lower[widest][i]),
            "upper": float(fc.upper[widest][i]),
            "intervals": {str(lv): {"lower": float(fc.lower[lv][i]), "upper": float(fc.upper[lv][i])} for lv in level},
        })
    origin = plan.origin if plan.origin is not None else fc.start - fc.step
    return {"cached": False, "degraded": [],
            "weather_issued_at": plan.vintage.issued_iso if plan.vintage is not None else None,
            "region": plan.query.region, "model": answer.alias, "requested_model": plan.query.model,
            "model_version": answer.version, "issued_at": issued_at.isoformat(), "origin": iso(origin),
            "level": level, "points": points, "fallback": answer.fallback_reason is not None,
            "fallback_reason": answer.fallback_reason, "history_source": plan.source}


@pytest.mark.parametrize("level", [(90,), (50, 80, 95), (80, 90)])
def test_rendered_bytes_equal_the_point_by_point_document(core, region_history, level):
    """The column-wise writer gives byte for byte what orjson writes for the plain document,
    awkward numbers included (tiny, huge, negative, integral, NaN)."""
    import orjson

    from gridcast.forecast import Answer, render, render_bytes
    from gridcast.models.base import Forecast

    q = ForecastQuery(region="region-1", model="naive", horizon=7, level=list(level),
                      history=observations(region_history.iloc[-200:]))
    (plan,) = core.plan([q])
    awkward = np.array([1e-7, 123456789.125, -0.0, 2.0, 1 / 3, 5e300, np.nan])
    rng = np.random.default_rng(len(level))
    lower = {lv: awkward - rng.random(7) * lv for lv in level}
    upper = {lv: awkward + rng.random(7) * lv for lv in level}
    fc = Forecast(start=1_700_000_000, step=3600, mean=awkward, lower=lower, upper=upper)
    for reason in (None, "model failed"):
        answer = Answer(fc, "naive", "v1", reason)
        issued = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
        expected = orjson.dumps(_render_point_by_point(plan, answer, issued))
        assert render_bytes(plan, answer, issued_at=issued) == expected
        assert render(plan, answer, issued_at=issued) == orjson.loads(expected)
