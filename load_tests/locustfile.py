"""Locust scenarios against a running gridcast service.

Users (pick them by class name on the command line; none named = all, by ``weight``):

* :class:`CachedForecastUser` — the same few (region, horizon) forecasts from the
  service's state: after the first miss every answer is a cache hit. Measures the
  cached path (validation, key, lookup, JSON).
* :class:`UncachedForecastUser` — LSTM forecasts, each with its OWN history (the
  region's recent actuals, stretched to 168–336 hourly points and jittered), random
  horizon: every request misses the cache and reaches the model, so concurrent users
  exercise adaptive batching. An answer from the naive fallback counts as a failure:
  it would not have measured the LSTM.
* :class:`BatchForecastUser` — ``POST /forecast_batch`` with 2–8 such requests.
* :class:`Batch64User` — ``POST /forecast_batch`` with 64 uncached requests per call
  (the forecasts/s of the batch endpoint).
* :class:`OverloadUser` — uncached forecasts where a ``503`` with ``Retry-After`` is
  an expected answer, reported under its own name (``/forecast [503]``) so its latency
  shows; any other status fails. Run it with more users than the service can serve.
* :class:`MixedUser` — a weighted mix: mostly cached, some uncached, a few batch,
  ``/models`` and ``/recent`` calls (what a dashboard plus a few API clients do).

Every response is checked (``catch_response=True``): status 200, as many points as the
horizon asked for, ``lower <= mean <= upper`` (:func:`load_tests.common.check_forecast`).
Requests are grouped by ``name=``.

Payload: uncached requests send their history object per point by default;
``LOADTEST_PAYLOAD=columnar`` sends it as arrays (``{start, step, load_mw: [...]}``), the
form that validates as arrays. Both give the same forecasts.

Pacing: users are closed-loop (next request as soon as the answer is in) unless
``LOADTEST_USER_RATE`` (requests/s per user) is set; then :func:`poisson_throughput`
gives Poisson arrivals at users × rate in total (the cached-latency benchmark).

Warm-up inside a run: ``LOADTEST_MEASURE_AFTER_S`` restarts the statistics that many
seconds in (the overload benchmark leaves its arrival burst out that way).

Load shape: plain runs use ``--users``/``--spawn-rate``/``--run-time`` (defaults in
``[tool.locust]`` of pyproject.toml). ``LOADTEST_SHAPE=step`` switches on
:class:`StepLoadShape`: ``LOADTEST_STEPS`` equal steps up to ``--users`` across
``--run-time``.

    locust -f load_tests/locustfile.py --host http://127.0.0.1:3000 UncachedForecastUser
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from typing import Any, ClassVar

import numpy as np
import orjson
from locust import LoadTestShape, between, constant, events, task
from locust.contrib.fasthttp import FastHttpUser

from load_tests.common import (MIN_HISTORY, base_from_recent, check_forecast, columnar_history, decode_answer,
                               decode_batch, history_from, synthetic_base)

#: request bodies: a columnar history's load is a numpy array
NUMPY = orjson.OPT_SERIALIZE_NUMPY

logger = logging.getLogger("gridcast.loadtest")

#: horizons of the uncached scenario (steps); the cached one uses the first two
HORIZONS = (1, 6, 24, 48, 168)
#: history lengths of the uncached scenario (a week .. two weeks, hourly)
HISTORY_POINTS = (MIN_HISTORY, 240, 336)


def poisson_throughput(rate: float):
    """Requests at the times of a Poisson process of ``rate`` per second, per user.

    ``constant_throughput`` keeps users that started together in lockstep: 50 users at
    10 req/s each arrive as a burst of 50 every 100 ms, and the last of each burst
    queues behind the other 49. Independent exponential gaps (scheduled from the
    previous arrival, so a slow answer does not lower the rate) add up to the steady
    arrivals of many independent clients.
    """
    def wait_time(user: Any) -> float:
        now = time.monotonic()
        due = getattr(user, "_poisson_due", None)
        due = (now if due is None else due) + float(user.rng.exponential(1.0 / rate))
        user._poisson_due = due
        return max(0.0, due - now)

    return wait_time


def _wait_time():
    rate = os.environ.get("LOADTEST_USER_RATE")
    if rate:
        return poisson_throughput(float(rate))
    return constant(0)


class _Catalog:
    """What the service serves, fetched once per Locust process (GET /models, POST /recent)."""

    regions: ClassVar[list[str] | None] = None
    lstm_regions: ClassVar[list[str]] = []
    base: ClassVar[dict[str, list[dict]]] = {}

    _lock: ClassVar[Any] = None

    @classmethod
    def load(cls, client: Any) -> None:
        from gevent.lock import Semaphore  # users are greenlets: the first loads, the others wait

        if cls._lock is None:
            cls._lock = Semaphore()
        with cls._lock:
            if cls.regions is None:
                cls._load(client)

    @classmethod
    def _load(cls, client: Any) -> None:
        with client.get("/models", name="/models", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"GET /models: HTTP {resp.status_code}")
                raise RuntimeError("the service's /models did not answer; is it ready?")
            models = resp.json().get("models", [])
        regions = sorted({m["region"] for m in models})
        lstm = sorted({m["region"] for m in models if m["alias"] == "lstm"})
        rng = np.random.default_rng(0)
        for region in regions:
            with client.post("/recent", json={"region": region, "n": 336}, name="/recent",
                             catch_response=True) as resp:
                base = base_from_recent(resp.json()) if resp.status_code == 200 else []
                if resp.status_code != 200:
                    resp.failure(f"POST /recent: HTTP {resp.status_code}")
            # a week of actuals is what the LSTM needs; a deployment with less gets a synthetic week
            cls.base[region] = base if len(base) >= MIN_HISTORY else synthetic_base(rng)
        cls.lstm_regions = lstm
        cls.regions = regions
        if not regions:
            raise RuntimeError("the service serves no models")


def _decoded(resp: Any, decode: Any) -> Any:
    """The body decoded for its check, or None after marking the request failed (not JSON, wrong types)."""
    try:
        return decode(resp.content or b"")
    except ValueError as exc:  # msgspec's DecodeError / ValidationError are ones
        resp.failure(f"not a forecast answer ({exc}): {(resp.text or '')[:200]!r}")
        return None


class _ForecastUser(FastHttpUser):
    abstract = True
    wait_time = _wait_time()
    # a request stuck this long is a failure, not a hang of the whole run
    network_timeout = 60.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        _Catalog.load(self.client)
        self.rng = np.random.default_rng(random.randrange(2**32))
        rate = os.environ.get("LOADTEST_USER_RATE")
        if rate:  # paced: the first request too comes at a random time, not with every other user's
            time.sleep(float(self.rng.exponential(1.0 / float(rate))))

    # -- request builders ----------------------------------------------------------------
    def uncached_query(self) -> dict:
        regions = _Catalog.lstm_regions or _Catalog.regions
        region = regions[int(self.rng.integers(len(regions)))]
        n = HISTORY_POINTS[int(self.rng.integers(len(HISTORY_POINTS)))]  # (rng.choice converts the tuple each call)
        base = _Catalog.base[region]
        history = (columnar_history(base, n=n, rng=self.rng) if os.environ.get("LOADTEST_PAYLOAD") == "columnar"
                   else history_from(base, n=n, rng=self.rng))
        return {
            "region": region,
            "model": "lstm" if _Catalog.lstm_regions else "best",
            "horizon": HORIZONS[int(self.rng.integers(len(HORIZONS)))],
            "history": history,
        }

    def cached_query(self) -> dict:
        regions = _Catalog.lstm_regions or _Catalog.regions
        return {"region": regions[int(self.rng.integers(len(regions)))],
                "model": "lstm" if _Catalog.lstm_regions else "best",
                "horizon": HORIZONS[2 + int(self.rng.integers(2))]}

    # -- requests with checks ----------------------------------------------------------------
    def post_forecast(self, query: dict, name: str) -> None:
        strict = query["model"] if query.get("history") else None
        with self.client.post("/forecast", data=orjson.dumps(query, option=NUMPY), headers={"content-type": "application/json"},
                              name=name, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                return
            body = _decoded(resp, decode_answer)
            if body is None:
                return
            problem = check_forecast(body, region=query["region"], horizon=query["horizon"], model=strict)
            if problem:
                resp.failure(problem)

    def post_batch(self, queries: list[dict], name: str) -> None:
        with self.client.post("/forecast_batch", data=orjson.dumps({"requests": queries}, option=NUMPY),
                              headers={"content-type": "application/json"}, name=name,
                              catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                return
            body = _decoded(resp, decode_batch)
            if body is None:
                return
            results = body.results
            if not isinstance(results, list) or len(results) != len(queries):
                resp.failure(f"{len(results) if isinstance(results, list) else 'no'} results for {len(queries)}")
                return
            for i, (q, r) in enumerate(zip(queries, results, strict=True)):
                problem = check_forecast(r, region=q["region"], horizon=q["horizon"],
                                         model=q["model"] if q.get("history") else None)
                if problem:
                    resp.failure(f"results[{i}]: {problem}")
                    return


class CachedForecastUser(_ForecastUser):
    """The same few forecasts from the service's state: cache hits after the first."""

    weight = 1

    @task
    def cached(self) -> None:
        self.post_forecast(self.cached_query(), "/forecast [cached]")


class UncachedForecastUser(_ForecastUser):
    """LSTM forecasts each with its own history: every one reaches the (batched) model."""

    weight = 1

    @task
    def uncached(self) -> None:
        self.post_forecast(self.uncached_query(), "/forecast [uncached lstm]")


class BatchForecastUser(_ForecastUser):
    """``/forecast_batch`` with 2–8 uncached requests (one HTTP call, one model batch)."""

    weight = 1

    @task
    def batch(self) -> None:
        n = int(self.rng.integers(2, 9))
        self.post_batch([self.uncached_query() for _ in range(n)], "/forecast_batch [2-8 uncached]")


class Batch64User(_ForecastUser):
    """``/forecast_batch`` with 64 uncached requests: the batch endpoint's forecasts/s (× 64)."""

    weight = 1

    @task
    def batch(self) -> None:
        self.post_batch([self.uncached_query() for _ in range(64)], "/forecast_batch [64 uncached]")


class OverloadUser(_ForecastUser):
    """Uncached forecasts past saturation: 200s pass, 503 + Retry-After is the expected refusal.

    A refused user waits before its next request, as HTTP clients' retry policies do.
    ``LOADTEST_RETRY_AFTER`` says how: ``jitter`` (the default) waits the ``Retry-After``
    plus up to as much again at random, as retry policies with jitter do so that refused
    clients do not come back as one herd; ``exact`` waits exactly the ``Retry-After``
    (every client refused in the same instant returns in the same instant); ``ignore``
    retries at once (a flood of refusals rather than clients).
    """

    weight = 1
    _wait = 0.0

    def wait_time(self) -> float:  # type: ignore[override]
        wait, self._wait = self._wait, 0.0
        return wait

    @task
    def uncached(self) -> None:
        query = self.uncached_query()
        with self.client.post("/forecast", data=orjson.dumps(query, option=NUMPY), headers={"content-type": "application/json"},
                              name="/forecast [uncached lstm]", catch_response=True) as resp:
            if resp.status_code == 503:
                retry = resp.headers.get("retry-after")
                if not retry:
                    resp.failure("503 without Retry-After")
                else:
                    resp.success()
                    resp.request_meta["name"] = "/forecast [503]"  # its own row: the refusal's latency
                    mode = os.environ.get("LOADTEST_RETRY_AFTER", "jitter")
                    if mode == "exact":
                        self._wait = float(retry)
                    elif mode != "ignore":
                        self._wait = float(retry) * (1.0 + float(self.rng.random()))
                return
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:200]}")
                return
            body = _decoded(resp, decode_answer)
            if body is not None:
                problem = check_forecast(body, region=query["region"], horizon=query["horizon"], model=query["model"])
                if problem:
                    resp.failure(problem)


class MixedUser(_ForecastUser):
    """A dashboard-and-clients mix: mostly cached, some uncached and batch, a few reads."""

    weight = 3
    wait_time = _wait_time() if os.environ.get("LOADTEST_USER_RATE") else between(0.05, 0.5)

    @task(10)
    def cached(self) -> None:
        self.post_forecast(self.cached_query(), "/forecast [cached]")

    @task(4)
    def uncached(self) -> None:
        self.post_forecast(self.uncached_query(), "/forecast [uncached lstm]")

    @task(1)
    def batch(self) -> None:
        self.post_batch([self.uncached_query() for _ in range(int(self.rng.integers(2, 5)))],
                        "/forecast_batch [2-4 uncached]")

    @task(1)
    def models(self) -> None:
        with self.client.get("/models", name="/models", catch_response=True) as resp:
            if resp.status_code != 200 or not resp.json().get("models"):
                resp.failure(f"HTTP {resp.status_code} or no models")

    @task(1)
    def recent(self) -> None:
        region = _Catalog.regions[int(self.rng.integers(len(_Catalog.regions)))]
        with self.client.post("/recent", data=json.dumps({"region": region, "n": 48}),
                              headers={"content-type": "application/json"}, name="/recent",
                              catch_response=True) as resp:
            if resp.status_code != 200 or resp.json().get("region") != region:
                resp.failure(f"HTTP {resp.status_code}")


class StepLoadShape(LoadTestShape):
    """``LOADTEST_STEPS`` equal steps of users up to ``--users``, spread over ``--run-time``.

    Only active with ``LOADTEST_SHAPE=step`` (Locust uses any non-abstract shape it
    finds, so the class stays abstract otherwise and plain runs keep ``-u``/``-r``).
    """

    abstract = os.environ.get("LOADTEST_SHAPE", "").lower() != "step"
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        opts = self.runner.environment.parsed_options
        total = float(opts.run_time or 60)
        elapsed = self.get_run_time()
        if elapsed >= total:
            return None
        steps = max(1, int(os.environ.get("LOADTEST_STEPS", "4")))
        step = min(steps, int(elapsed // (total / steps)) + 1)
        users = max(1, round(opts.num_users * step / steps))
        return users, max(float(opts.spawn_rate or users), 1.0)


@events.test_start.add_listener
def _measure_after(environment: Any, **_: Any) -> None:
    """``LOADTEST_MEASURE_AFTER_S``: statistics restart that many seconds into the run.

    What comes before is a warm-up inside the same run: the users keep running, only
    the figures start again (an overload run leaves out its arrival burst, every
    user's first request in the same instant).
    """
    delay = float(os.environ.get("LOADTEST_MEASURE_AFTER_S") or 0)
    if delay > 0:
        import gevent

        gevent.spawn_later(delay, environment.stats.reset_all)


@events.quitting.add_listener
def _log_totals(environment: Any, **_: Any) -> None:
    """One line with the totals, whatever the output options (the smoke test reads the CSV)."""
    total = environment.stats.total
    logger.info("loadtest done at %s: %d requests, %d failures, %.1f req/s, p99 %s ms",
                time.strftime("%H:%M:%S"), total.num_requests, total.num_failures,
                total.total_rps, total.get_response_time_percentile(0.99))

