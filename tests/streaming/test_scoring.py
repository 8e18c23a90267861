"""Live scoring through the bridge on the real broker and Redis: equal to an offline recomputation, idempotent."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from gridcast.scoring import WINDOWS, RedisLedger, live_metrics
from streaming.bridge import Bridge
from tests.streaming.streamkit import consume_all, produce, wait_for
from tests.streaming.test_bridge import start, stop

pytestmark = pytest.mark.integration


def noisy_days(regions: list[str], days: int, seed: int = 1) -> list[dict]:
    """Hourly observations with a daily cycle and noise (a seasonal naive is not exact on them)."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-03-01", periods=24 * days, freq="h", tz="UTC")
    docs = []
    for i, ts in enumerate(idx):
        for k, region in enumerate(regions):
            load = 500.0 + 100 * k + 80 * np.sin(2 * np.pi * (i % 24) / 24) + rng.normal(0, 15)
            docs.append({"region": region, "timestamp": ts.isoformat(), "load_mw": round(float(load), 3)})
    return docs


def offline(published: list[dict], docs: list[dict], region: str) -> dict[str, dict]:
    """window -> {n, mape, mae, bias, coverage} recomputed from the published forecasts and the actuals."""
    actual = {pd.Timestamp(d["timestamp"]): d["load_mw"] for d in docs if d["region"] == region}
    held: dict[tuple, dict] = {}
    for f in published:  # one forecast per (model, version, origin): the longest
        if f["region"] == region and f.get("request_id") is None and "error" not in f:
            key = (f["model"], f["model_version"], f["origin"])
            if key not in held or len(f["points"]) >= len(held[key]["points"]):
                held[key] = f
    rows = []
    for f in held.values():
        for p in f["points"]:
            ts = pd.Timestamp(p["timestamp"])
            if ts in actual:
                a = actual[ts]
                rows.append((ts, a, p["mean"], {lv: iv["lower"] <= a <= iv["upper"] for lv, iv in p["intervals"].items()}))
    end = max(r[0] for r in rows)
    out = {}
    for window, span in WINDOWS.items():
        inside = [r for r in rows if r[0] > end - pd.Timedelta(seconds=span)]
        a = np.array([r[1] for r in inside])
        m = np.array([r[2] for r in inside])
        out[window] = {"n": len(inside), "mape": float(np.mean(np.abs(m - a) / a) * 100),
                       "mae": float(np.mean(np.abs(m - a))), "bias": float(np.mean(m - a)),
                       "coverage": {lv: float(np.mean([r[3][lv] for r in inside])) for lv in ("80", "95")}}
    return out


async def test_replayed_days_give_live_metrics_equal_to_an_offline_recomputation_and_a_replay_changes_nothing(stream):
    s = stream.settings
    regions = ["north", "south"]
    docs = noisy_days(regions, days=9)
    ledger = RedisLedger(s.redis_url, prefix=s.redis_key_prefix)
    bridge = Bridge(s)
    task = await start(bridge)
    try:
        # in daily chunks, so forecasts are issued along the way (as a live stream would)
        for day in range(9):
            chunk = docs[day * 48:(day + 1) * 48]
            await produce(s.kafka_bootstrap, s.topic_observations, chunk)
            await wait_for(lambda n=(day + 1) * 48: bridge.metrics.counts["processed"] == n, what=f"day {day}")
        published = await consume_all(s.kafka_bootstrap, s.topic_forecasts, timeout_s=60,
                                      until=lambda ms: len(ms) >= bridge.metrics.counts["forecasts"])
        first = {r: live_metrics(ledger.points(r)) for r in regions}
        points = {r: sorted(p.key for p in ledger.points(r)) for r in regions}
        scored_once = bridge.metrics.counts["scored"]

        await produce(s.kafka_bootstrap, s.topic_observations, docs)  # the whole replay again
        await wait_for(lambda: bridge.metrics.counts["processed"] == 2 * len(docs), what="the replay consumed")
        again = {r: live_metrics(ledger.points(r)) for r in regions}
    finally:
        await stop(bridge, task)
        ledger.close()

    forecasts = [json.loads(m.value) for m in published]
    assert len(forecasts) == bridge.metrics.counts["forecasts"] >= 8
    assert scored_once > 0 and bridge.metrics.counts["scored"] > scored_once  # the replay was scored again
    for region in regions:
        expected = offline(forecasts, docs, region)
        live = first[region]["naive"]
        for window in ("24h", "7d"):
            got, want = live[window], expected[window]
            assert got["n"] == want["n"] > 0
            for key in ("mape", "mae", "bias"):
                assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-5), (region, window, key)
            assert got["coverage"] == pytest.approx(want["coverage"])
        assert again[region] == first[region], "replaying the actuals changed the live metrics"
        assert sorted(p.key for p in RedisLedger(s.redis_url, prefix=s.redis_key_prefix).points(region)) == points[region]
    assert set(defaultdict(int, {f["region"]: 1 for f in forecasts})) == set(regions)


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """``(metric name, labels)`` -> value of every ``gridcast_live_*`` sample the bridge serves."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) if family.name.startswith("gridcast_live_")
            for sample in family.samples}


async def test_the_bridge_exports_the_live_scores_of_its_ledger_as_prometheus_gauges(services):
    from tests.streaming.streamkit import delete_topics, make_stream
    from tests.support import free_port

    port = free_port()
    stream = make_stream(services["redis_url"], services["bootstrap"], stream_metrics_port=port,
                         stream_metrics_every_s=0.2)
    s = stream.settings
    docs = noisy_days(["north"], days=4, seed=5)
    ledger = RedisLedger(s.redis_url, prefix=s.redis_key_prefix)
    bridge = Bridge(s)
    task = await start(bridge)
    try:
        for day in range(4):  # daily chunks: forecasts along the way, scored by the next days' actuals
            await produce(s.kafka_bootstrap, s.topic_observations, docs[day * 24:(day + 1) * 24])
            await wait_for(lambda n=(day + 1) * 24: bridge.metrics.counts["processed"] == n, what=f"day {day}")
        want = live_metrics(ledger.points("north"), bands=s.score_lead_bands)["naive"]
        await wait_for(lambda: bridge.metrics.live.get(("north", "naive", "24h")) == want["24h"],
                       what="the live scores refreshed")
        samples = scrape(port)
    finally:
        await stop(bridge, task)
        ledger.close()
        with stream.redis as r:
            if keys := list(r.scan_iter(f"{s.redis_key_prefix}:*")):
                r.delete(*keys)
        delete_topics(s)

    assert want["24h"]["n"] > 0 and want["24h"]["mape"] > 0
    for window, summary in want.items():
        labels = {"region": "north", "model": "naive", "window": window}
        for key in ("mape", "mae", "bias", "n"):
            assert samples[(f"gridcast_live_{key}", frozenset(labels.items()))] == pytest.approx(summary[key])
        for level, share in summary["coverage"].items():
            got = samples[("gridcast_live_coverage", frozenset({**labels, "level": level}.items()))]
            assert got == pytest.approx(share)
