"""The bridge's metrics: counters in memory, logged periodically, optionally Prometheus.

consumed / processed / dead-lettered / forecasts / retries, consumer lag per partition,
the forecast latency (Kafka timestamp of the newest observation used → forecast
written to Redis and published), and the live scores of the forecasts the bridge
published: ``gridcast_live_{mape,mae,bias,n}{region,model,window}`` and
``gridcast_live_coverage{region,model,window,level}``, the service's gauges
(:data:`gridcast.scoring.LIVE_GAUGES`), recomputed by :class:`LiveRefresh` from the
ledger for the regions scored since its last refresh. A private Prometheus registry
keeps tests that start several bridges in one process from colliding.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import redis

from gridcast.scoring import LIVE_GAUGES, live_metrics

logger = logging.getLogger(__name__)

COUNTERS = ("consumed", "processed", "dead_lettered", "forecasts", "forecast_errors", "requests_answered",
            "retries", "commits", "vintages", "scored")


class BridgeMetrics:
    """Counters + a latency window; ``snapshot()`` for logs and tests."""

    def __init__(self, *, window: int = 10_000) -> None:
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.lag: dict[str, int] = {}
        self.latencies_ms: deque[float] = deque(maxlen=window)
        #: (region, model, window) -> the newest live summary (:func:`gridcast.scoring.live_metrics`)
        self.live: dict[tuple[str, str, str], dict] = {}
        self._prom = None

    def inc(self, name: str, n: int = 1) -> None:
        self.counts[name] += n
        if self._prom is not None:
            self._prom["counters"].labels(event=name).inc(n)

    def observe_latency(self, ms: float) -> None:
        self.latencies_ms.append(ms)
        if self._prom is not None:
            self._prom["latency"].observe(ms / 1000)

    def set_lag(self, partition: str, lag: int) -> None:
        self.lag[partition] = lag
        if self._prom is not None:
            self._prom["lag"].labels(partition=partition).set(lag)

    def set_live(self, region: str, scores: dict[str, dict[str, dict]]) -> None:
        """Keep one region's live scores (model -> window -> summary) and set their gauges."""
        for model, windows in scores.items():
            for window, summary in windows.items():
                self.live[(region, model, window)] = summary
                if self._prom is None:
                    continue
                labels = {"region": region, "model": model, "window": window}
                for key in LIVE_GAUGES:
                    if key != "coverage" and summary.get(key) is not None:
                        self._prom["live"][key].labels(**labels).set(summary[key])
                for level, value in summary.get("coverage", {}).items():
                    self._prom["live"]["coverage"].labels(level=str(level), **labels).set(value)

    def snapshot(self) -> dict:
        lat = np.array(self.latencies_ms) if self.latencies_ms else None
        return {
            **self.counts,
            "lag": sum(self.lag.values()),
            "latency_p50_ms": float(np.percentile(lat, 50)) if lat is not None else None,
            "latency_p99_ms": float(np.percentile(lat, 99)) if lat is not None else None,
        }

    def serve(self, port: int) -> None:
        """Expose the metrics for Prometheus on ``port`` (a private registry)."""
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        registry = CollectorRegistry()
        self._prom = {
            "counters": Counter("gridcast_bridge_events", "Bridge events by kind", ["event"], registry=registry),
            "lag": Gauge("gridcast_bridge_lag", "Messages not yet processed per partition", ["partition"],
                         registry=registry),
            "latency": Histogram("gridcast_bridge_forecast_latency_seconds",
                                 "Observation produced -> forecast in Redis and published", registry=registry,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)),
        }
        self._prom["live"] = {
            key: Gauge(f"gridcast_live_{key}", doc, ["region", "model", "window", *(["level"] if key == "coverage"
                                                                                    else [])], registry=registry)
            for key, doc in LIVE_GAUGES.items()
        }
        for name, value in self.counts.items():
            self._prom["counters"].labels(event=name).inc(value)
        for (region, model, window), summary in list(self.live.items()):
            self.set_live(region, {model: {window: summary}})
        self._server = start_http_server(port, addr="127.0.0.1", registry=registry)
        logger.info("bridge metrics on http://127.0.0.1:%d/metrics", port)

    def close(self) -> None:
        """Stop the metrics HTTP server, if one runs."""
        server = getattr(self, "_server", None)
        if server is not None:
            httpd, thread = server
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)
            self._server = None


class LiveRefresh:
    """Recomputes the live scores of the regions scored since the last refresh, at most every ``every_s``.

    Off the event loop (the ledger is sync redis-py), and in slices: one call refreshes
    regions until ``BUDGET_S`` has passed (one region at least) and leaves the rest due
    for the next, so the bridge's next poll never waits behind a refresh of every region
    (a spike of its forecasts' latency). Redis away means the refresh is tried again
    later: the gauges keep their last values meanwhile.
    """

    #: a refresh that took ``t`` seconds waits at least ``MAX_DUTY × t`` before the next
    MAX_DUTY = 20.0
    #: the time one call may spend refreshing (seconds), between two of the bridge's polls
    BUDGET_S = 0.02

    def __init__(self, metrics: BridgeMetrics, *, every_s: float, bands: Sequence[int]) -> None:
        self.metrics = metrics
        self.every_s = every_s
        self.bands = tuple(bands)
        self._due: set[str] = set()
        self._next = 0.0

    def scored(self, regions: Iterable[str]) -> None:
        """Mark regions whose actuals scored forecasts (their live scores changed)."""
        self._due.update(regions)

    async def maybe_refresh(self, ledger: Any) -> None:
        now = time.monotonic()
        if not self._due or now < self._next:
            return
        regions = sorted(self._due)
        try:
            done = await asyncio.to_thread(self.refresh, ledger, regions, budget_s=self.BUDGET_S)
        except (redis.RedisError, OSError) as exc:
            done = []
            logger.warning("bridge: live scores not refreshed (%s: %s); trying again later", type(exc).__name__, exc)
        self._due.difference_update(done)
        # the gauges take at most a twentieth of the bridge's time: a slice that took long
        # (a month of points per region) pushes the next one back; a finished round waits every_s
        took = time.monotonic() - now
        self._next = now + max(self.MAX_DUTY * took, 0.0 if self._due and done else self.every_s)

    def refresh(self, ledger: Any, regions: Iterable[str], *, budget_s: float | None = None) -> list[str]:
        """Refresh ``regions`` in order, stopping once ``budget_s`` has passed; the regions refreshed."""
        started, done = time.monotonic(), []
        for region in regions:
            if done and budget_s is not None and time.monotonic() - started >= budget_s:
                break
            self.metrics.set_live(region, live_metrics(ledger.points(region), bands=self.bands))
            done.append(region)
        return done


class PeriodicLog:
    """Logs the snapshot every ``every_s`` seconds (called from the bridge loop)."""

    def __init__(self, metrics: BridgeMetrics, every_s: float) -> None:
        self.metrics = metrics
        self.every_s = every_s
        self._next = time.monotonic() + every_s

    def maybe_log(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every_s
        s = self.metrics.snapshot()
        logger.info(
            "bridge: consumed=%d processed=%d dead_lettered=%d forecasts=%d lag=%d latency p50=%s p99=%s ms",
            s["consumed"], s["processed"], s["dead_lettered"], s["forecasts"], s["lag"],
            _fmt(s["latency_p50_ms"]), _fmt(s["latency_p99_ms"]),
        )


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"
