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


def retrain_children() -> dict[int, str]:
    """pid -> state of this process's children running ``training.retrain_cli`` (``Z``: exited, not reaped)."""
    from pathlib import Path

    out = {}
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == os.getpid() and b"training.retrain_cli" in cmdline:
            out[int(proc.name)] = stat[0]
    return out


def test_the_drift_trigger_launches_a_real_retrain_once_live_error_stays_above_validation(isolated):
    """The service's trigger (service.live.LiveScores) with retrain_on_drift on: a real process fits a new version."""
    import time

    import numpy as np

    from gridcast.catalog import ModelCatalog
    from gridcast.models.base import SeasonalNaive
    from gridcast.scoring import ForecastRecord
    from gridcast.store import model_name, model_store, save_model, served_models
    from gridcast.stores import make_state_store
    from service.live import LiveScores
    from training.data.synthetic import generate

    settings = isolated.model_copy(update={"retrain_on_drift": True, "drift_ratio": 1.5, "drift_duration_s": 60,
                                           "drift_min_points": 12})
    df, _ = generate(days=60, regions=1, seed=4)  # the retrain holds out a third: 20 validation days
    region = str(df["region"].iloc[0])
    rows = df[df["region"] == region].set_index("timestamp")[["load_mw", "temperature_c"]]
    make_state_store(settings).add_observations(region, rows)  # what the retrain process reads
    save_model(SeasonalNaive().fit(rows.iloc[:24 * 14]), region=region,
               metadata={"validation": {"mape": 2.0}, "freq": "1h"})
    (served,) = served_models()
    catalog = ModelCatalog.from_store(served_models())
    versions = lambda: len(model_store().list(model_name("naive", region)))  # noqa: E731
    assert versions() == 1

    # a served forecast 20 % above what then arrived: live MAPE 20 % > 1.5 x the validation 2 %
    day = rows.iloc[-24:]
    origin = int(day.index[0].timestamp()) - 3600
    live = LiveScores(settings)
    live.ledger.record([ForecastRecord(region, "naive", served.tag.split(":")[1], origin, 3600,
                                       day["load_mw"].to_numpy() * 1.2, {}, {})])
    assert live.actuals(region, day) == 24

    live.refresh(catalog, now=1000.0)
    live.refresh(catalog, now=1059.0)  # above the bound, but not yet for drift_duration_s
    assert live.retrains == [] and versions() == 1 and retrain_children() == {}
    live.refresh(catalog, now=1060.0)
    assert live.retrains == [region] and len(retrain_children()) == 1

    # the launched `python -m training.retrain_cli --region R` fits on the state store's history, saves, exits
    deadline = time.monotonic() + 240
    while set(retrain_children().values()) - {"Z"} and time.monotonic() < deadline:
        time.sleep(1)
    assert versions() == 2, "the drift trigger's retrain process saved no new version"
    live.refresh(catalog, now=2000.0)  # the same drift episode: no second retrain
    assert live.retrains == [region]
    assert np.isfinite(live.region_metrics(region)["naive"]["24h"]["mape"])
