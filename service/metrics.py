"""Prometheus metrics of the service, exported on BentoML's ``/metrics``.

BentoML runs the service process with Prometheus' multiprocess mode; counters
incremented here (batch sizes, cache hits, fallbacks) show up on ``/metrics``.

``prometheus_client`` is used directly (``bentoml.metrics`` is deprecated in 1.4).
Metrics are created lazily on first use, once per process: by then BentoML has
pointed ``PROMETHEUS_MULTIPROC_DIR`` at its shared directory.
"""

from __future__ import annotations

from functools import cache

from typing import Any


@cache
def _counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Any:
    from prometheus_client import Counter

    return Counter(name=name, documentation=documentation, labelnames=list(labels))


@cache
def batch_size_histogram() -> Any:
    """Sizes of the batches the batcher computed (batching's effect)."""
    from prometheus_client import Histogram

    return Histogram(
        name="gridcast_model_batch_size",
        documentation="Model calls computed together in one batch.",
        labelnames=["alias"],
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    )


#: latency buckets of the forecast routes (seconds): a cache hit takes about a millisecond
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@cache
def _request_histogram() -> Any:
    from prometheus_client import Histogram

    return Histogram(
        name="gridcast_http_request_duration_seconds",
        documentation="Forecast routes (/forecast, /forecast_batch): time from the request's arrival at the "
        "service's outermost layer to its answer, by route and status (503s included).",
        labelnames=["route", "status"],
        buckets=REQUEST_BUCKETS,
    )


@cache
def _request_child(route: str, status: int) -> Any:
    """The histogram series of one (route, status): ``labels()`` once, not per request."""
    return _request_histogram().labels(route=route, status=str(status))


def observe_request(route: str, status: int, seconds: float) -> None:
    """One forecast-route answer (these routes bypass BentoML's own request metrics)."""
    _request_child(route, status).observe(seconds)


#: core event → (metric name, help, label names)
EVENTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cache_hit": ("gridcast_cache_hits", "Forecasts served from the cache.", ()),
    "cache_miss": ("gridcast_cache_misses", "Forecast cache misses.", ()),
    "fallback": ("gridcast_fallbacks", "Answers given by the seasonal-naive fallback.", ("alias",)),
    "cache_error": ("gridcast_cache_errors", "Cache operations that failed (Redis down; answered anyway).", ()),
    "overloaded": ("gridcast_overloaded", "Requests refused at once because the model queue was full (503).", ()),
    "implausible": ("gridcast_implausible_forecasts", "Model forecasts refused by the plausibility guard.", ("alias",)),
    "state_error": ("gridcast_state_errors", "State-store reads that failed (answered anyway).", ()),
}


class PrometheusMetrics:
    """The :class:`gridcast.forecast.Metrics` the service hands to the core."""

    def count(self, event: str, **labels: str) -> None:
        name, doc, label_names = EVENTS[event]
        counter = _counter(name, doc, label_names)
        (counter.labels(**labels) if label_names else counter).inc()


def observe_batch(size: int, alias: str = "any") -> None:
    batch_size_histogram().labels(alias=alias).observe(size)


@cache
def _gauge(name: str, documentation: str, labels: tuple[str, ...]) -> Any:
    from prometheus_client import Gauge

    # one service process sets them: in BentoML's multiprocess mode the newest value is the value
    return Gauge(name=name, documentation=documentation, labelnames=list(labels), multiprocess_mode="mostrecent")


def set_live(region: str, model: str, window: str, summary: dict) -> None:
    """Set ``gridcast_live_{mape,mae,bias,n,coverage}{region,model,window[,level]}`` from one live summary."""
    from gridcast.scoring import LIVE_GAUGES

    labels = {"region": region, "model": model, "window": window}
    for key, doc in LIVE_GAUGES.items():
        if key == "coverage":  # per level: below
            continue
        value = summary.get(key)
        if value is not None:
            _gauge(f"gridcast_live_{key}", doc, ("region", "model", "window")).labels(**labels).set(value)
    cover = _gauge("gridcast_live_coverage", LIVE_GAUGES["coverage"], ("region", "model", "window", "level"))
    for level, value in summary.get("coverage", {}).items():
        cover.labels(level=str(level), **labels).set(value)
