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
