"""Service fixtures: quick real models trained once per session into a private store.

The store lives in a temporary ``BENTOML_HOME``; fixtures point the environment at it
only while they need it, so other packages' tests never see these models.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest


from training.data.synthetic import generate
from gridcast.schema import region_frame

REGIONS = ("region-1", "region-2")


@pytest.fixture(scope="session")
def service_data() -> pd.DataFrame:
    """45 days, two regions: enough for a quick LSTM and the weekly naive."""
    df, _ = generate(days=45, regions=2, seed=11)
    return df


@pytest.fixture(scope="session")
def served_home(tmp_path_factory: pytest.TempPathFactory, service_data: pd.DataFrame) -> Path:
    """A BentoML home with quick naive + LSTM models served for both regions (no SARIMAX)."""
    from gridcast.settings import Settings
    from training.train_cli import train_models

    home = tmp_path_factory.mktemp("served-bentoml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTOML_HOME", str(home))
        train_models(service_data, {"synthetic": True}, aliases=("naive", "lstm"), quick=True,
                     settings=Settings(lstm_epochs=2))
    return home


@pytest.fixture(scope="session")
def recent_frame(service_data: pd.DataFrame) -> pd.DataFrame:
    return region_frame(service_data, "region-1")


def observations(frame: pd.DataFrame) -> list[dict]:
    """A frame as the ``history`` list of a request."""
    return [
        {"timestamp": ts.isoformat(), "load_mw": float(r["load_mw"]), "temperature_c": float(r["temperature_c"])}
        for ts, r in frame.iterrows()
    ]


@pytest.fixture
def served_env(served_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Environment for a service (in-process or subprocess) on the served store."""
    monkeypatch.setenv("BENTOML_HOME", str(served_home))
    for name in list(os.environ):
        if name.startswith("GRIDCAST_"):
            monkeypatch.delenv(name)
    yield dict(os.environ)


@pytest.fixture(scope="session")
def app():
    """One ASGI app per test process: BentoML registers its request metrics once per app.

    The API is tested alone (the UI mount has its own tests under tests/ui/). Each
    ``TestClient`` context runs the lifespan again, i.e. a fresh service instance
    that reads the settings and the store anew.
    """
    from gridcast.settings import get_settings

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRIDCAST_UI_MOUNT", "false")
        get_settings.cache_clear()
        from service.service import Gridcast

        asgi = Gridcast.to_asgi()
    get_settings.cache_clear()
    return asgi


@pytest.fixture
def client(served_env, app):
    """A fresh service instance (lifespan start-up) with fresh state and cache per test."""
    from starlette.testclient import TestClient

    from gridcast.settings import get_settings

    get_settings.cache_clear()
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    get_settings.cache_clear()
