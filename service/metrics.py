"""Prometheus metrics of the service, exported on BentoML's ``/metrics``.

BentoML runs every service process with Prometheus' multiprocess mode, so counters
incremented in the model process (batch sizes) show up on the API server's
``/metrics`` next to the API process's own (cache hits, fallbacks).

``bentoml.metrics`` objects are created lazily on first use: BentoML must have set up
its multiprocess registry before the first metric exists, which is after import.
"""

from __future__ import annotations

from functools import cache

import bentoml


@cache
def _counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> object:
    return bentoml.metrics.Counter(name=name, documentation=documentation, labelnames=list(labels))


@cache
def batch_size_histogram() -> object:
    """Sizes of the batches the model process computed (adaptive batching's effect)."""
    return bentoml.metrics.Histogram(
        name="gridcast_model_batch_size",
        documentation="Model calls computed together in one batch.",
        labelnames=["alias"],
        buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    )


#: core event → (metric name, help, label names)
EVENTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cache_hit": ("gridcast_cache_hits", "Forecasts served from the cache.", ()),
    "cache_miss": ("gridcast_cache_misses", "Forecast cache misses.", ()),
    "fallback": ("gridcast_fallbacks", "Answers given by the seasonal-naive fallback.", ("alias",)),
    "state_error": ("gridcast_state_errors", "State-store reads that failed (answered anyway).", ()),
}


class PrometheusMetrics:
    """The :class:`service.core.Metrics` the service hands to the core."""

    def count(self, event: str, **labels: str) -> None:
        name, doc, label_names = EVENTS[event]
        counter = _counter(name, doc, label_names)
        (counter.labels(**labels) if label_names else counter).inc()


def observe_batch(alias: str, size: int) -> None:
    batch_size_histogram().labels(alias=alias).observe(size)
