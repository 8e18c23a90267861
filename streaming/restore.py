"""Kafka is the log, Redis can be rebuilt: re-apply a partition's history window from the topic.

Like Kafka Streams restoring a state store from its changelog. The bridge calls
:func:`restore_window` when a partition's "applied" marker in Redis is missing or
behind the offset it is about to consume (Redis restarted empty, flushed, replaced):
before it forecasts, the rows Redis lost are written again through the same
idempotent write, so nothing the log still holds is lost.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from gridcast.settings import Settings
from gridcast.state_redis import AsyncRedisStateStore
from streaming.messages import InvalidMessage, parse_observation

logger = logging.getLogger(__name__)


#: margin on top of the history window in the observations topic's retention
RETENTION_MARGIN_S = 7 * 86400


def retention_ms(settings: Settings) -> int:
    """``retention.ms`` of the observations topic: the window, the future allowance, a week of margin."""
    return (window_s(settings) + settings.max_future_s + RETENTION_MARGIN_S) * 1000


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Per topic, the configs it is created with (topics not named get the broker's defaults).

    * the observations topic is the state's log: it keeps at least the history window
      (``retention.ms``, :func:`retention_ms`);
    * the weather-forecast topic is compacted (``cleanup.policy=compact``, key = region):
      only a region's newest vintage matters, so the log keeps the latest message per
      region for as long as the topic lives instead of deleting it after the
      broker's retention.
    """
    return {
        settings.topic_observations: {"retention.ms": str(retention_ms(settings))},
        settings.topic_weather: {"cleanup.policy": "compact"},
    }


async def ensure_topics(settings: Settings) -> None:
    """Create the bridge's topics if missing, with :func:`topic_configs` (a topic that exists is left as it is)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    s = settings
    wanted = [s.topic_observations, s.topic_requests, s.topic_forecasts, s.topic_dead_letter, s.topic_weather]
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            # replication factor 1: the project's broker is a single node (scripts/kafka.sh)
            configs = topic_configs(s)
            await admin.create_topics([
                NewTopic(t, s.topic_partitions, 1, topic_configs=configs.get(t, {})) for t in missing
            ])
            logger.info("bridge: created topics %s with %d partitions", ", ".join(missing), s.topic_partitions)
    finally:
        await admin.close()


def window_s(settings: Settings) -> int:
    """The history window a region keeps, in seconds (``state_max_points`` steps)."""
    return settings.state_max_points * settings.stream_step_s


async def restore_window(
    settings: Settings, state: AsyncRedisStateStore, upto: Mapping[TopicPartition, int], *,
    clock: Callable[[], float],
) -> tuple[int, dict[TopicPartition, tuple[int, int]]]:
    """Re-apply each partition's history window, up to (not including) its offset, from Kafka.

    Where to start: the newest observation before ``upto`` gives the data time the
    window ends at; ``offsets_for_times(newest - window - max_future_s)`` the first
    offset that may hold a row of it (a message is produced at the earliest
    ``max_future_s`` before its timestamp, or it is dead-lettered). Partitions whose
    log starts later (retention) start at their beginning. A missing or invalid
    newest observation means "read the whole retained log".

    Returns:
        The messages read again, and per partition the offsets ``(start, end)`` read.
    """
    s = settings
    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.kafka_bootstrap, group_id=None, enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024, request_timeout_ms=30_000,
    )
    await consumer.start()
    try:
        tps = sorted(upto, key=lambda tp: tp.partition)
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        wanted = {tp: upto[tp] for tp in tps if upto[tp] > begin[tp]}
        starts: dict[TopicPartition, int] = {}
        for tp, end in wanted.items():
            newest = await _epoch_at(consumer, tp, end - 1, settings=s, clock=clock)
            starts[tp] = begin[tp]
            if newest is not None:
                target_ms = max(0, (newest - window_s(s) - s.max_future_s) * 1000)
                found = (await consumer.offsets_for_times({tp: target_ms}))[tp]
                starts[tp] = max(begin[tp], found.offset if found is not None else end)
        total = 0
        for tp, end in wanted.items():
            total += await _reapply(consumer, state, tp, starts[tp], end, settings=s, clock=clock)
        return total, {tp: (starts[tp], end) for tp, end in wanted.items()}
    finally:
        await consumer.stop()


async def _epoch_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int, *, settings: Settings,
                    clock: Callable[[], float]) -> int | None:
    """The data timestamp of the observation at ``offset`` (None if it is invalid or gone)."""
    consumer.seek(tp, offset)
    batch = await consumer.getmany(tp, timeout_ms=10_000, max_records=1)
    for msg in batch.get(tp, []):
        try:
            return parse_observation(msg.value, settings=settings, now_s=clock()).epoch
        except InvalidMessage:
            return None
    return None


async def _reapply(consumer: AIOKafkaConsumer, state: AsyncRedisStateStore, tp: TopicPartition, start: int,
                   end: int, *, settings: Settings, clock: Callable[[], float]) -> int:
    """Write the valid observations of ``tp`` in ``[start, end)`` again (idempotent, trimmed)."""
    consumer.seek(tp, start)
    n = 0
    position = start
    while position < end:
        batch = await consumer.getmany(tp, timeout_ms=10_000, max_records=settings.stream_max_records)
        msgs = [m for m in batch.get(tp, []) if m.offset < end]
        if not batch.get(tp):
            if await consumer.position(tp) >= end:
                break  # only control records were left
            raise KafkaError(f"restore of {tp.topic}[{tp.partition}] stalled at offset {position}")
        rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
        now = clock()
        for msg in msgs:
            try:
                obs = parse_observation(msg.value, settings=settings, now_s=now)
            except InvalidMessage:
                continue  # dead-lettered when it was first consumed
            rows[obs.region].append((obs.epoch, obs.doc))
        await state.add_many(rows)
        n += len(msgs)
        position = await consumer.position(tp)
    return n
