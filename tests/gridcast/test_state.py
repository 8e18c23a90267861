"""The state store against a REAL Redis (started by scripts/redis.sh) and in memory.

Both stores must behave the same, so every behaviour test runs on both.
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from gridcast.state import InMemoryStateStore, StateStoreUnavailable
from gridcast.stores import make_state_store
from gridcast.state_redis import AsyncRedisStateStore, RedisStateStore
from tests import support
from gridcast.settings import Settings

@pytest.fixture(scope="module")
def redis_up() -> str:
    return support.redis_up()


def frame(start: str, n: int, load0: float = 100.0) -> pd.DataFrame:
    idx = pd.date_range(start, periods=n, freq="h", tz="UTC", name="timestamp")
    return pd.DataFrame(
        {"load_mw": load0 + np.arange(n, dtype=float), "temperature_c": 20.0 + np.arange(n) / 10}, index=idx
    )


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield InMemoryStateStore(max_points=48)
        return
    url = request.getfixturevalue("redis_up")
    s = RedisStateStore(url, prefix=f"test-{uuid.uuid4().hex}", max_points=48)
    yield s
    keys = list(s.client.scan_iter(f"{s.keys.prefix}:*"))
    if keys:
        s.client.delete(*keys)
    s.close()


def test_add_is_idempotent_and_counts_only_new_rows(store):
    assert store.add_observations("north", frame("2024-01-01", 10)) == 10
    assert store.add_observations("north", frame("2024-01-01", 10)) == 0
    assert store.add_observations("north", frame("2024-01-01 05:00", 10)) == 5
    hist = store.history("north")
    assert len(hist) == 15
    assert hist.index.is_monotonic_increasing and str(hist.index.tz) == "UTC"
    assert hist.index.name == "timestamp"
    assert store.last_timestamp("north") == pd.Timestamp("2024-01-01 14:00", tz="UTC")


def test_correction_overwrites_without_counting(store):
    store.add_observations("north", frame("2024-01-01", 3))
    assert store.add_observations("north", frame("2024-01-01 01:00", 1, load0=999.0)) == 0
    assert store.history("north")["load_mw"].tolist() == [100.0, 999.0, 102.0]


def test_history_tail_columns_and_missing_values(store):
    f = frame("2024-01-01", 6)
    f.loc[f.index[2], "temperature_c"] = np.nan
    f["humidity_pct"] = 50.0
    f["not_canonical"] = 1.0
    store.add_observations("south", f.reset_index())  # a timestamp column works too
    hist = store.history("south", n=4)
    assert list(hist.columns) == ["load_mw", "temperature_c", "humidity_pct"]
    assert hist["load_mw"].tolist() == [102.0, 103.0, 104.0, 105.0]
    assert np.isnan(hist["temperature_c"].iloc[0])
    assert store.history("south", n=0).empty
    assert store.history("nowhere").empty and list(store.history("nowhere").columns) == ["load_mw", "temperature_c"]
    assert store.last_timestamp("nowhere") is None


def test_keeps_at_most_max_points_and_ignores_replays_of_trimmed_rows(store):
    assert store.add_observations("east", frame("2024-01-01", 60)) == 60
    hist = store.history("east")
    assert len(hist) == 48
    assert hist.index[0] == pd.Timestamp("2024-01-01 12:00", tz="UTC")
    # a replay of the oldest, already trimmed, rows changes nothing
    assert store.add_observations("east", frame("2024-01-01", 12)) == 0
    assert store.history("east").index[0] == pd.Timestamp("2024-01-01 12:00", tz="UTC")


def test_regions_lists_every_region_written(store):
    store.add_observations("b", frame("2024-01-01", 2))
    store.add_observations("a", frame("2024-01-01", 2))
    assert store.regions() == ["a", "b"]


def test_naive_timestamps_are_rejected(store):
    f = frame("2024-01-01", 2)
    f.index = f.index.tz_localize(None)
    with pytest.raises(ValueError, match="timezone-aware"):
        store.add_observations("north", f)


def test_redis_down_raises_a_domain_error():
    s = RedisStateStore("redis://127.0.0.1:1/0", timeout_s=0.2)  # nothing listens on port 1
    with pytest.raises(StateStoreUnavailable, match="state store unavailable"):
        s.history("north")


async def test_async_store_shares_layout_with_sync_store(redis_up):
    prefix = f"test-{uuid.uuid4().hex}"
    sync = RedisStateStore(redis_up, prefix=prefix, max_points=48)
    sync.add_observations("a", frame("2024-01-01", 5))
    astore = AsyncRedisStateStore(redis_up, prefix=prefix, max_points=48)
    try:
        from gridcast.state import encode_rows

        res = await astore.add_many({"a": encode_rows(frame("2024-01-01 03:00", 4)), "b": encode_rows(frame("2024-01-01", 2))})
        assert res["a"] == (2, int(pd.Timestamp("2024-01-01 06:00", tz="UTC").timestamp()), 7)
        assert res["b"][0] == 2
        hists = await astore.histories(["a", "b", "c"], n=3)
        assert hists["a"]["load_mw"].tolist() == [101.0, 102.0, 103.0]  # 04:00..06:00, rewritten by the async store
        assert len(hists["b"]) == 2 and hists["c"].empty
        assert sync.history("a").equals(await astore.history("a"))
        assert await astore.regions() == ["a", "b"]
    finally:
        await astore.close()
        keys = list(sync.client.scan_iter(f"{prefix}:*"))
        sync.client.delete(*keys)
        sync.close()


def test_make_state_store_follows_settings(redis_up):
    assert isinstance(make_state_store(Settings()), InMemoryStateStore)
    store = make_state_store(Settings(redis_url=redis_up))
    assert isinstance(store, RedisStateStore) and store.keys.prefix == "gridcast"
    store.close()


def test_series_from_rows_equals_the_frame_path_with_holes_missing_fields_and_any_order():
    """The bridge's windows go rows → arrays; the result is what rows → frame → series gives."""
    import numpy as np

    from gridcast.series import Series
    from gridcast.state import frame_from_rows, series_from_rows

    rng = np.random.default_rng(5)
    epochs = [1_700_000_000 + 3600 * int(k) for k in sorted(rng.choice(400, size=300, replace=False))]
    rows = []
    for i in range(len(epochs)):
        row = {"load_mw": float(rng.normal(1000, 50))}
        if i % 3:
            row["temperature_c"] = float(rng.normal(15, 5))
        if i % 7 == 0:
            row["humidity_pct"] = float(rng.uniform(20, 90))
        rows.append(row)
    shuffled = rng.permutation(len(epochs))
    got = series_from_rows([epochs[i] for i in shuffled], [rows[i] for i in shuffled], step=3600)
    want = Series.from_frame(frame_from_rows(epochs, rows), step=3600)
    assert (got.start, got.step, sorted(got.columns)) == (want.start, want.step, sorted(want.columns))
    assert "humidity_pct" in got.columns and np.isnan(got.load).sum() == 100  # the holes
    for name in want.columns:
        np.testing.assert_array_equal(got.columns[name], want.columns[name])
    assert got.digest() == want.digest()
    assert series_from_rows([], [], step=3600) is None
