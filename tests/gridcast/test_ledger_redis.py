"""The Redis ledger scores like the embedded one, looking back only as far as a region's forecasts reach."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from gridcast.scoring import ForecastRecord, InMemoryLedger, RedisLedger
from tests.support import redis_up

H = 3600


def _record(origin: int, n: int, *, version: str = "v1", level: float = 100.0) -> ForecastRecord:
    mean = level + np.arange(n, dtype=float)
    return ForecastRecord("r1", "lstm", version, origin, H, mean, {90: mean - 5}, {90: mean + 5})


@pytest.fixture
def ledgers():
    prefix = f"test-ledger-{uuid.uuid4().hex[:8]}"
    redis_ledger = RedisLedger(redis_up(), prefix=prefix)
    yield redis_ledger, InMemoryLedger()
    keys = list(redis_ledger.client.scan_iter(f"{prefix}:*"))
    if keys:
        redis_ledger.client.delete(*keys)
    redis_ledger.close()


def _points(ledger) -> list[tuple]:
    return sorted((p.key, p.lead, p.actual, p.mean, tuple(sorted(p.covered.items()))) for p in ledger.points("r1"))


def test_short_and_long_forecasts_are_scored_the_same_as_the_embedded_ledger(ledgers):
    red, mem = ledgers
    t0 = 1_700_000_000 - 1_700_000_000 % H
    records = [_record(t0 + i * H, 24) for i in range(30)] + [_record(t0, 168, version="v2")]
    for ledger in (red, mem):
        ledger.record(records)
    # actuals 100 h after t0: only the 168-step forecast reaches them (the 24-step ones ended)
    late = [(t0 + 100 * H, 150.0), (t0 + 101 * H, 151.0)]
    # actuals 20-40 h after t0: several 24-step forecasts and the long one
    early = [(t0 + k * H, 120.0 + k) for k in range(20, 40)]
    assert red.score("r1", late) == mem.score("r1", late) == 2
    assert red.score("r1", early) == mem.score("r1", early) > 20
    assert _points(red) == _points(mem)
    assert int(red.client.hget(f"{red.prefix}:ledger-span", "r1")) == 168 * H


def test_a_ledger_recorded_without_spans_falls_back_to_the_longest_allowed_span(ledgers):
    red, mem = ledgers
    t0 = 1_700_000_000 - 1_700_000_000 % H
    long = _record(t0, 168, version="v2")
    for ledger in (red, mem):
        ledger.record([long])
    red.client.hdel(f"{red.prefix}:ledger-span", "r1")  # as written before spans were kept
    late = [(t0 + 150 * H, 160.0)]
    assert red.score("r1", late) == mem.score("r1", late) == 1


def test_many_regions_score_in_one_pass_like_region_by_region(ledgers):
    red, mem = ledgers
    t0 = 1_700_000_000 - 1_700_000_000 % H
    records = []
    for k, region in enumerate(("r1", "r2", "r3")):
        records += [ForecastRecord(region, "lstm", "v1", t0 + i * H, H, 100.0 * (k + 1) + np.arange(24.0),
                                   {90: np.full(24, 90.0 * (k + 1))}, {90: np.full(24, 130.0 * (k + 1))})
                    for i in range(10)]
    for ledger in (red, mem):
        ledger.record(records)
    actuals = {"r1": [(t0 + 5 * H, 104.0)], "r2": [(t0 + 12 * H, 150.0), (t0 + 13 * H, 999.0)],
               "r3": [], "r4": [(t0 + 5 * H, 1.0)]}  # r3 nothing new, r4 no forecasts held
    got = red.score_many(actuals)
    assert got == {r: n for r, n in mem.score_many(actuals).items() if n}
    assert got["r1"] == 5 and got["r2"] == 20
    for region in ("r1", "r2", "r3"):
        assert sorted(p.key for p in red.points(region)) == sorted(p.key for p in mem.points(region))


def _slow_ledger(delay_s: float) -> type[InMemoryLedger]:
    """An embedded ledger whose ``points`` takes ``delay_s`` per region (a slow Redis)."""
    import time

    class SlowLedger(InMemoryLedger):
        def points(self, region):
            time.sleep(delay_s)
            return super().points(region)

    return SlowLedger


def test_a_slow_live_refresh_pushes_the_next_one_back():
    import asyncio
    import time

    from streaming.metrics import BridgeMetrics, LiveRefresh

    SlowLedger = _slow_ledger(0.05)
    live = LiveRefresh(BridgeMetrics(), every_s=0.01, bands=(6, 24))
    live.scored(["r1", "r2"])
    before = time.monotonic()
    asyncio.run(live.maybe_refresh(SlowLedger()))
    # one region (50 ms) spends the 20 ms budget: the other stays due, after a twentieth-duty pause
    assert live._due == {"r2"}
    assert live._next >= before + LiveRefresh.MAX_DUTY * 0.05
    asyncio.run(live.maybe_refresh(SlowLedger()))
    assert live._due == {"r2"}  # not yet: the pause holds
    live._next = 0.0
    asyncio.run(live.maybe_refresh(SlowLedger()))
    assert live._due == set()


def test_a_refresh_slice_stops_at_its_budget_but_always_does_one_region():
    from streaming.metrics import BridgeMetrics, LiveRefresh

    SlowLedger = _slow_ledger(0.01)
    live = LiveRefresh(BridgeMetrics(), every_s=1.0, bands=(6, 24))
    regions = [f"r{i}" for i in range(10)]
    assert live.refresh(SlowLedger(), regions, budget_s=0.0) == ["r0"]
    assert 2 <= len(live.refresh(SlowLedger(), regions, budget_s=0.035)) <= 5
    assert live.refresh(SlowLedger(), regions) == regions  # no budget: all


def test_records_that_left_the_window_are_trimmed_for_every_region_of_a_call():
    prefix = f"test-ledger-{uuid.uuid4().hex[:8]}"
    red = RedisLedger(redis_up(), prefix=prefix, keep_s=10 * H, max_span_s=24 * H)
    try:
        t0 = 1_700_000_000 - 1_700_000_000 % H
        old = [ForecastRecord(r, "lstm", "v1", t0, H, np.ones(24), {}, {}) for r in ("a", "b")]
        red.record(old)
        # 40 h later: t0 is older than newest - keep - span (34 h) in both regions, one call for both
        red.record([ForecastRecord(r, "lstm", "v1", t0 + 40 * H, H, np.ones(24), {}, {}) for r in ("a", "b")])
        for region in ("a", "b"):
            assert red.client.zrange(f"{prefix}:ledger-idx:{region}", 0, -1) == [f"lstm|v1|{t0 + 40 * H}".encode()]
            assert red.client.hlen(f"{prefix}:ledger:{region}") == 1
        # the parsed-record memo gives what parsing gives
        raw = red.client.hvals(f"{prefix}:ledger:a")[0]
        first, again = red._parse(raw), red._parse(raw)
        assert again is first and first.origin == t0 + 40 * H and first.region == "a"
    finally:
        keys = list(red.client.scan_iter(f"{prefix}:*"))
        if keys:
            red.client.delete(*keys)
        red.close()
