"""``gridcast retrain``: from the state store's history (real Redis), promoting only a better model."""

from __future__ import annotations

import argparse
import os
import uuid

import pytest

from tests.support import redis_up


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    for name in [n for n in os.environ if n.startswith("GRIDCAST_")]:
        monkeypatch.delenv(name)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("GRIDCAST_REDIS_URL", redis_up())
    monkeypatch.setenv("GRIDCAST_REDIS_KEY_PREFIX", prefix)
    from gridcast.settings import get_settings

    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
    import redis

    with redis.Redis.from_url(redis_up()) as r:
        keys = list(r.scan_iter(f"{prefix}:*"))
        if keys:
            r.delete(*keys)


def test_retrain_from_the_state_store_promotes_only_a_better_model(isolated, capsys):
    from gridcast.models.base import SeasonalNaive
    from gridcast.stores import make_state_store
    from gridcast.store import save_model, served_models
    from training.data.synthetic import generate
    from training.retrain_cli import run

    df, _ = generate(days=30, regions=1, seed=3)
    region = str(df["region"].iloc[0])
    rows = df[df["region"] == region].set_index("timestamp")[["load_mw", "temperature_c"]]
    make_state_store(isolated).add_observations(region, rows)
    # a served model that claims a poor validation error: the live-data model must beat it
    stale = SeasonalNaive().fit(rows.iloc[:24 * 14])
    save_model(stale, region=region, metadata={"validation": {"mape": 99.0}, "freq": "1h"})
    args = argparse.Namespace(region=region, data=None, models=None, quick=True, val_days=None)

    assert run(args) == 0
    first = capsys.readouterr().out
    (served,) = served_models()
    assert "promoted" in first and "not promoted" not in first and served.metadata["validation"]["mape"] < 99.0
    assert run(args) == 0  # the same history again: not better, so the served model stays
    assert "not promoted" in capsys.readouterr().out and served_models()[0].tag == served.tag
