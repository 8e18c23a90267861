"""The bridge's topics on the real broker: created with the configs :func:`streaming.restore.topic_configs` names."""

from __future__ import annotations

import pytest

from streaming.restore import ensure_topics, retention_ms

pytestmark = pytest.mark.integration


async def _configs(bootstrap: str, topics: list[str], timeout_s: float = 30.0) -> dict[str, dict[str, str]]:
    """topic -> {config name: value} as the broker describes it.

    A topic created a moment ago may not be known to the broker answering yet (an
    error code, no entries: KRaft metadata propagates asynchronously); it is asked
    again until every topic is described, for at most ``timeout_s``.
    """
    import asyncio
    import time

    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    out: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            answers = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
            errors = {}
            for answer in answers:
                for code, msg, _type, name, entries in answer.resources:
                    if code or not entries:
                        errors[name] = (code, msg)
                    else:
                        out[name] = {e[0]: e[1] for e in entries}
            if not errors or time.monotonic() > deadline:
                assert not errors, f"the broker could not describe {errors}"
                return out
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def test_the_weather_topic_is_compacted_and_the_observations_topic_keeps_the_window(stream):
    s = stream.settings
    await ensure_topics(s)
    await ensure_topics(s)  # a second start finds them and changes nothing

    configs = await _configs(s.kafka_bootstrap, [s.topic_weather, s.topic_observations, s.topic_forecasts])

    # the latest vintage per region (key = region) is what matters: compacted, not deleted by age
    assert configs[s.topic_weather]["cleanup.policy"] == "compact"
    assert configs[s.topic_observations]["cleanup.policy"] == "delete"
    assert configs[s.topic_observations]["retention.ms"] == str(retention_ms(s))
    assert configs[s.topic_forecasts]["cleanup.policy"] == "delete"
