"""Fixtures for the streaming tests: REAL Kafka and Redis, started by the project's scripts.

The shared broker (127.0.0.1:9092) and Redis (6379) are started if not running and
never stopped here; each test gets its own topics, consumer group and Redis key prefix.
Tests that stop a broker or Redis start PRIVATE instances on other ports and dirs so
tests running beside them are not disturbed.
"""

from __future__ import annotations

import pytest
from tests.streaming.streamkit import Stream, delete_topics, make_stream, script


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    """The shared Redis and Kafka (started if needed)."""
    script("redis.sh", "up")
    script("kafka.sh", "up")
    return {"redis_url": "redis://127.0.0.1:6379/0", "bootstrap": "127.0.0.1:9092"}


@pytest.fixture
def stream(services) -> Stream:
    s = make_stream(services["redis_url"], services["bootstrap"])
    yield s
    with s.redis as r:
        keys = list(r.scan_iter(f"{s.settings.redis_key_prefix}:*"))
        if keys:
            r.delete(*keys)
    delete_topics(s.settings)
