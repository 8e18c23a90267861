"""Fixtures for the import tests (the quality checks' own fixtures are in tests/gridcast/quality)."""

from __future__ import annotations

import pytest

from gridcast.settings import Settings


@pytest.fixture(scope="session")
def quality_settings() -> Settings:
    """Default quality settings (not read from the environment of the test run)."""
    return Settings(_env_file=None)
