"""The load generator's payload builders and its definition of a correct answer (load_tests/common.py)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from load_tests.common import (check_forecast, columnar, columnar_history, decode_answer, decode_batch, history_from,
                               synthetic_base)


def _answer(points: list[dict]) -> dict:
    return {"region": "r", "model": "lstm", "fallback": False, "points": points}


def _point(lo: float | None, mean: float | None, hi: float | None) -> dict:
    return {"timestamp": "2024-01-01T00:00:00+00:00", "lower": lo, "mean": mean, "upper": hi}


@pytest.mark.parametrize("n", [168, 240, 336])
def test_columnar_history_is_the_columnar_form_of_history_from(n: int) -> None:
    base = synthetic_base(np.random.default_rng(0))
    a = columnar_history(base, n=n, rng=np.random.default_rng(n))
    b = columnar(history_from(base, n=n, rng=np.random.default_rng(n)))
    assert orjson.dumps(a, option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(b)
    c = columnar_history(base, n=n, rng=np.random.default_rng(n + 1))
    assert not np.array_equal(a["load_mw"], c["load_mw"]), "each draw must be a different history (a cache miss)"


def test_check_forecast_accepts_a_right_answer() -> None:
    assert check_forecast(_answer([_point(1, 2, 3), _point(2, 2, 2)]), region="r", horizon=2, model="lstm") is None


@pytest.mark.parametrize(("bad", "why"), [
    (_point(3, 2, 4), "points[1]: not lower <= mean <= upper"),
    (_point(1, 2, 1.5), "points[1]: not lower <= mean <= upper"),
    (_point(None, 2, 3), "points[1] lacks lower/mean/upper"),
    (_point(1, float("nan"), 3), "points[1] is not finite"),
    (_point(1, float("inf"), 3), "points[1] is not finite"),
    (_point(float("-inf"), 2, 3), "points[1] is not finite"),
    ({"timestamp": "t", "mean": 2.0, "upper": 3.0}, "points[1] lacks lower/mean/upper"),
])
def test_check_forecast_names_the_first_bad_point(bad: dict, why: str) -> None:
    body = _answer([_point(1, 2, 3), bad, _point(1, 2, 3)])
    assert (check_forecast(body, region="r", horizon=3) or "").startswith(why)


def test_check_forecast_wrong_region_length_and_fallback() -> None:
    good = _answer([_point(1, 2, 3)])
    assert "region" in check_forecast(good, region="x", horizon=1)
    assert "points for horizon 2" in check_forecast(good, region="r", horizon=2)
    assert "answered" in check_forecast({**good, "fallback": True}, region="r", horizon=1, model="lstm")


def test_decoded_answers_are_checked_like_their_json() -> None:
    point = {"timestamp": "t", "mean": 2, "lower": 1.0, "upper": 3.5, "intervals": {"90": {"lower": 1.0, "upper": 3.5}}}
    good = {**_answer([point, point]), "cached": False, "issued_at": "x"}
    assert check_forecast(decode_answer(orjson.dumps(good)), region="r", horizon=2, model="lstm") is None
    bad = {**good, "points": [point, {**point, "mean": None}]}
    assert check_forecast(decode_answer(orjson.dumps(bad)), region="r", horizon=2) == "points[1] lacks lower/mean/upper"
    results = decode_batch(orjson.dumps({"results": [good, bad]})).results
    assert [check_forecast(r, region="r", horizon=2) is None for r in results] == [True, False]
    with pytest.raises(ValueError):
        decode_answer(orjson.dumps({**good, "points": [{**point, "mean": "2.0"}]}))  # a string is not a number
    with pytest.raises(ValueError):
        decode_answer(b"<html>")
    assert check_forecast({**good, "region": 5}, region="r", horizon=2).startswith("malformed answer")
