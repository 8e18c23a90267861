"""The bridge's in-memory windows equal what Redis holds, through appends, rewrites, holes and trims."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import orjson
import pytest

from gridcast.state import series_from_rows
from gridcast.state_redis import AsyncRedisStateStore
from streaming.windows import Windows
from tests import support

STEP = 3600
T0 = 1_700_000_000 - 1_700_000_000 % STEP


@pytest.fixture(scope="module")
def redis_url() -> str:
    return support.redis_up()


def _row(rng: np.random.Generator, extra: bool) -> str:
    row = {"load_mw": float(rng.normal(1000, 50))}
    if rng.random() < 0.7:
        row["temperature_c"] = float(rng.normal(15, 5))
    if extra:
        row["humidity_pct"] = float(rng.uniform(20, 90))
    return orjson.dumps(row).decode()


def _batches(rng: np.random.Generator, n_batches: int) -> list[dict[str, list[tuple[int, str]]]]:
    """Mostly the next hours in order; sometimes a hole, a rewrite of a held hour, an hour out of
    order, an hour long gone, or a column that no earlier row had."""
    nxt = {"a": 0, "b": 0}
    out = []
    for b in range(n_batches):
        batch: dict[str, list[tuple[int, str]]] = {}
        for region in nxt:
            k = int(rng.integers(1, 6))
            hours = list(range(nxt[region], nxt[region] + k))
            nxt[region] += k + (1 if rng.random() < 0.1 else 0)  # a hole
            roll = rng.random()
            if roll < 0.08 and nxt[region] > 3:
                hours.append(nxt[region] - int(rng.integers(2, 4)))  # a rewrite of an hour held
            elif roll < 0.12:
                hours.append(max(0, nxt[region] - 200))  # an hour older than the window
            rng.shuffle(hours)
            extra = b > n_batches // 2 and region == "b"
            batch[region] = [(T0 + h * STEP, _row(rng, extra)) for h in hours]
        out.append(batch)
    return out


def test_windows_equal_the_rows_redis_holds(redis_url):
    async def run() -> None:
        prefix = f"test-windows-{uuid.uuid4().hex[:8]}"
        state = AsyncRedisStateStore(redis_url, prefix=prefix, max_points=60)
        windows = Windows(48, 60)
        rng = np.random.default_rng(11)
        checked = 0
        try:
            for batch in _batches(rng, 120):
                written, _ = await state.add_many_applied(batch, "obs", {0: 1})
                windows.apply(batch, written)
                got = await windows.histories(state, sorted(batch), keep=set(batch), step=STEP)
                for region, (epochs, docs, _) in (await state.tails(sorted(batch), 48)).items():
                    rows = [orjson.loads(d) for d in docs]
                    want = series_from_rows(epochs, rows, step=STEP)
                    have = got[region]
                    assert (have.start, have.step, list(have.columns)) == (want.start, want.step, list(want.columns))
                    for name in want.columns:
                        np.testing.assert_array_equal(have.columns[name], want.columns[name])
                    checked += 1
            assert "humidity_pct" in got["b"].columns and "humidity_pct" not in got["a"].columns
        finally:
            keys = [k async for k in state.client.scan_iter(f"{prefix}:*")]
            if keys:
                await state.client.delete(*keys)
            await state.close()
        assert checked == 240

    asyncio.run(run())
