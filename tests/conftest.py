"""Shared fixtures: seeded synthetic data and an isolated BentoML model store.

Package-specific fixtures live in each ``tests/<package>/conftest.py``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from training.data.synthetic import generate
from gridcast.schema import region_frame


@pytest.fixture(scope="session")
def synthetic() -> pd.DataFrame:
    """Two regions, 10 weeks, hourly, Vietnamese holidays, seed 7 (clean)."""
    df, _ = generate(days=70, regions=2, seed=7)
    return df


@pytest.fixture(scope="session")
def region_history(synthetic: pd.DataFrame) -> pd.DataFrame:
    """One region's frame on a UTC index — what a forecaster's ``fit`` takes."""
    return region_frame(synthetic, "region-1")


@pytest.fixture
def bento_home(tmp_path, monkeypatch):
    """A private, empty BentoML home so tests never touch the user's model store."""
    home = tmp_path / "bentoml"
    monkeypatch.setenv("BENTOML_HOME", str(home))
    return home
