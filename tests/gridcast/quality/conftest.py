"""Fixtures for the data-quality tests: a year of clean synthetic data, hourly and half-hourly.

A year, because the calendar checks (day/month transposition, day type) need dates on
both sides of every swap; one region, to keep each check under a second.
"""

from __future__ import annotations

import pandas as pd
import pytest

from gridcast.synthetic import generate
from gridcast.settings import Settings


@pytest.fixture(scope="session")
def quality_settings() -> Settings:
    """Default quality settings (not read from the environment of the test run)."""
    return Settings(_env_file=None)


@pytest.fixture(scope="session")
def year_hourly() -> tuple[pd.DataFrame, dict]:
    """One region, 365 days from 2023-01-01, hourly, Vietnam (no DST, UTC+7), seed 11."""
    return generate(days=365, regions=1, seed=11)


@pytest.fixture(scope="session")
def year_halfhourly() -> tuple[pd.DataFrame, dict]:
    """One region, 365 days, half-hourly, Australia (Melbourne: DST, 46/50-step days), seed 12."""
    return generate(days=365, freq="30min", regions=1, seed=12, country="AU")
