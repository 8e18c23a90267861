"""Fixtures for the collectors: recorded responses, quick settings, a pinned clock.

Every HTTP call is answered by respx from files in ``tests/fixtures/collect`` (each
follows its API's documented format); nothing here reaches the network. Retries
sleep through a recorder, so backoff is asserted, not waited for.
"""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from training.collect.http import HttpClient, RetryPolicy
from training.collect.pipeline import Collector
from training.collect.store import SeriesStore
from gridcast.settings import Settings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "collect"
#: the pinned "now" of these tests: the fixtures are from the days before it
NOW = pd.Timestamp("2024-04-10T12:00", tz="UTC")


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        collect_dir=tmp_path / "collect",
        entsoe_api_token="test-token",
        eia_api_key="test-key",
        entsoe_url="https://entsoe.test/api",
        eia_url="https://eia.test/v2/electricity/rto/region-data/data/",
        openmeteo_archive_url="https://archive.openmeteo.test/v1/archive",
        openmeteo_forecast_url="https://api.openmeteo.test/v1/forecast",
        collect_max_retries=3,
        collect_backoff_s=0.01,
        collect_backoff_max_s=5.0,
        collect_rate_per_s=1e9,  # no throttling sleeps: the rate limit has its own test
        eia_page_length=60,
        forecast_weather_path=tmp_path / "forecast_weather.parquet",
    )


@pytest.fixture
def sleeps() -> list[float]:
    """Every sleep a client asked for (nothing actually sleeps)."""
    return []


@pytest.fixture
def make_client(settings, sleeps):
    def make(source: str = "test", hint: str | None = None) -> HttpClient:
        return HttpClient.from_settings(
            settings, source, credential_hint=hint, sleep=sleeps.append, rng=random.Random(0),
            retry=RetryPolicy(settings.collect_max_retries, settings.collect_backoff_s, settings.collect_backoff_max_s),
        )

    return make


@pytest.fixture
def collector(settings, make_client) -> Collector:
    store = SeriesStore(settings.collect_dir, settle=pd.Timedelta(hours=48), now=NOW)
    c = Collector(settings=settings, store=store, client_factory=make_client, now=NOW)
    yield c
    c.close()
