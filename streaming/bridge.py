"""The bridge: Kafka in, state + forecasts out — at least once, on a real broker.

One loop, one batch at a time (aiokafka's ``examples/local_state_consumer.py`` shape):

1. ``getmany`` a batch from ``topic_observations`` and ``topic_requests``
   (consumer group, auto-commit OFF);
2. validate every message; a bad one goes to ``topic_dead_letter`` with the original
   bytes and the reason + source topic/partition/offset in headers;
3. write the batch's observations to Redis in one pipelined, idempotent call
   (:class:`gridcast.state_redis.AsyncRedisStateStore`: keyed by region and timestamp, so a
   redelivered message changes nothing);
4. for every region whose newest complete data point moved on, and for every forecast
   request, compute a forecast (:mod:`streaming.forecasting`), write it to the Redis
   cache with a TTL (+ the region's latest-forecast key) and publish it on
   ``topic_forecasts`` (requests' answers carry their ``request_id``);
5. only then commit ``offset + 1`` per partition.

A failure in 2–5 (Redis, Kafka or the service away) retries the WHOLE batch with
backoff until it succeeds — nothing is committed before, so nothing is lost, and
the writes are idempotent, so nothing is doubled. A region's intermediate points
inside one batch are not forecast separately: a forecast from an older origin is
already stale when it is written. An unexpected error stops the bridge loudly
(non-zero exit) instead of leaving a consumer that no longer fetches.

On SIGTERM the loop finishes the batch in flight, commits, leaves the group (its
partitions move to the other bridges at once) and stops. The rebalance listener
waits for the batch in flight before partitions are revoked.

Kafka is the log, Redis a rebuildable cache of it. With every batch the bridge
raises a per-partition marker in Redis (``P:applied:{topic}``: the next offset whose
observations Redis holds), in the same pipeline as the rows. When the marker is
missing or behind where the group stands (Redis restarted empty, flushed, replaced
by an older copy) — checked on every assignment and on every batch — the bridge
first restores the partition's history window from the observations topic: a
short-lived consumer without a group seeks to the offset of (newest observation −
history window − ``max_future_s``) found with ``offsets_for_times`` and re-applies
every observation up to the group's position through the same idempotent write.
Only then does it forecast. The observations topic is created with a retention
(``retention.ms``) that covers the window with margin (:func:`retention_ms`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pandas as pd
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from gridcast.cache import AsyncRedisForecastCache, cache_key, latest_forecast_key
from gridcast.forecast import vintage_token
from gridcast.scoring import ForecastRecord, RedisLedger
from gridcast.state import StateStoreUnavailable, frame_from_rows
from gridcast.state_redis import AsyncRedisStateStore
from gridcast.stores import make_async_state_store
from streaming.forecasting import ForecastUnavailable, Job, StreamForecaster, make_forecaster
from streaming.messages import InvalidMessage, parse_observation, parse_request
from streaming.vintages import parse_weather
from streaming.metrics import BridgeMetrics, PeriodicLog
from gridcast.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: failures that mean "something is away for now": retry the batch, never commit past it
TRANSIENT: tuple[type[BaseException], ...] = (KafkaError, OSError, StateStoreUnavailable, ForecastUnavailable,
                                              asyncio.TimeoutError)


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


def _json_default(obj: Any) -> Any:
    """numpy scalars as numbers (orjson would stringify them), anything else as text."""
    import numpy as np

    return obj.item() if isinstance(obj, np.generic) else str(obj)


#: margin on top of the history window in the observations topic's retention
RETENTION_MARGIN_S = 7 * 86400


def window_s(settings: Settings) -> int:
    """The history window the state keeps per region, in seconds of data time."""
    return settings.state_max_points * settings.stream_step_s


def retention_ms(settings: Settings) -> int:
    """``retention.ms`` of the observations topic: the window, the future allowance, a week of margin."""
    return (window_s(settings) + settings.max_future_s + RETENTION_MARGIN_S) * 1000


class _Stopping(Exception):
    """Raised inside a retry loop when the bridge was asked to stop: leave without committing."""


@dataclass
class _Trigger:
    """The message that completed a region's newest data point (for latency and tracing)."""

    epoch: int
    topic: str
    partition: int
    offset: int
    produced_ms: int


class _Windows:
    """The newest ``n`` rows per region in memory, so a forecast does not re-read Redis.

    Only valid while this bridge is the region's only writer. Every write returns the
    number of rows Redis holds for the region; a number other than this window expects
    means someone else wrote (another bridge, around a rebalance), so the window is
    dropped and read again from Redis. All windows are dropped on every rebalance.
    """

    def __init__(self, n: int, max_points: int) -> None:
        self.n = min(n, max_points)
        self.max_points = max_points
        self._rows: dict[str, dict[int, dict]] = {}
        self._held: dict[str, int] = {}

    def clear(self) -> None:
        self._rows.clear()
        self._held.clear()

    def apply(self, rows: Mapping[str, list[tuple[int, str]]], written: Mapping[str, tuple[int, int | None, int]]) -> None:
        for region, (new, _, held) in written.items():
            window = self._rows.get(region)
            if window is None:
                continue
            if min(self._held[region] + new, self.max_points) != held:
                logger.info("bridge: %s was written elsewhere; re-reading its window", region)
                del self._rows[region], self._held[region]
                continue
            for epoch, doc in rows[region]:
                window[epoch] = orjson.loads(doc)
            if len(window) > self.n:
                for epoch in sorted(window)[: len(window) - self.n]:
                    del window[epoch]
            self._held[region] = held

    async def histories(
        self, state: AsyncRedisStateStore, regions: Sequence[str], *, keep: set[str]
    ) -> dict[str, pd.DataFrame]:
        """Histories of ``regions``; windows are kept only for ``keep`` (regions this bridge writes).

        A region read only to answer a request may be written by another bridge, so its
        rows are read fresh every time and not kept.
        """
        missing = [r for r in regions if r not in self._rows]
        fresh: dict[str, dict[int, dict]] = {}
        if missing:
            for region, (epochs, docs, held) in (await state.tails(missing, self.n)).items():
                rows = {e: orjson.loads(d) for e, d in zip(epochs, docs, strict=True) if d is not None}
                if region in keep:
                    self._rows[region], self._held[region] = rows, held
                else:
                    fresh[region] = rows
        out = {}
        for region in regions:
            window = self._rows.get(region, fresh.get(region, {}))
            epochs = sorted(window)
            out[region] = frame_from_rows(epochs, [window[e] for e in epochs])
        return out


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Wait for the batch in flight: it commits its offsets before the partitions go.
        async with self.bridge._inflight:
            await self.bridge._flush_commits()
            self.bridge._windows.clear()
            logger.info("bridge: partitions revoked: %s", _fmt_tps(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.bridge.assigned = set(assigned)
        self.bridge._windows.clear()
        # checked by the loop before the next batch: is Redis behind on these partitions?
        self.bridge._to_check = {tp for tp in assigned if tp.topic == self.bridge.settings.topic_observations}
        logger.info("bridge: partitions assigned: %s", _fmt_tps(assigned))


def _fmt_tps(tps: set[TopicPartition]) -> str:
    return ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in tps)) or "none"


class Bridge:
    """The aiokafka consumer group member that feeds Redis and publishes forecasts.

    Args:
        settings: topics, group, Redis, bounds, horizon, backoff.
        forecaster: how forecasts are computed (default from ``settings.forecast_via``).
        clock: epoch seconds (tests of the future-timestamp check control it).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        forecaster: StreamForecaster | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = s = settings
        self.forecaster = forecaster or make_forecaster(settings)
        self.clock = clock
        self.metrics = BridgeMetrics()
        self.assigned: set[TopicPartition] = set()
        self._inflight = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._origin: dict[str, int] = {}  # region -> origin (epoch) of the last forecast published
        steps = s.max_history_points if s.forecast_via != "naive" else 14 * 86400 // s.stream_step_s
        self._windows = _Windows(steps, s.state_max_points)
        self._next_offset: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._commit_task: asyncio.Task | None = None
        self._to_commit: dict[TopicPartition, int] = {}
        self._transient = TRANSIENT + _redis_errors()
        self.state: AsyncRedisStateStore | None = None
        self.cache: AsyncRedisForecastCache | None = None
        self.ledger: RedisLedger | None = None
        self.producer: AIOKafkaProducer | None = None
        self._to_check: set[TopicPartition] = set()
        #: restores done and observations re-applied from Kafka (tests, logs)
        self.restores = 0
        self.restored_messages = 0

    # ---- life cycle ----------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish the batch in flight, commit and stop (SIGTERM handler)."""
        if not self._stopping.is_set():
            logger.info("bridge: stopping (draining the batch in flight)")
        self._stopping.set()

    async def run(self) -> None:
        """Consume until :meth:`stop`; raises on an unexpected error (fail loudly)."""
        s = self.settings
        if s.stream_metrics_port:
            self.metrics.serve(s.stream_metrics_port)
        redis_url = s.redis_url or "redis://127.0.0.1:6379/0"
        self.state = make_async_state_store(s, redis_url)
        self.cache = AsyncRedisForecastCache(redis_url, prefix=s.redis_key_prefix, timeout_s=s.redis_timeout_s)
        # published forecasts wait here for their actuals (sync redis-py, called from a thread)
        self.ledger = RedisLedger(redis_url, prefix=s.redis_key_prefix, keep_s=s.score_keep_days * 86400,
                                  max_span_s=s.max_horizon * s.stream_step_s, timeout_s=s.redis_timeout_s)
        consumer = None
        try:
            await asyncio.to_thread(self.forecaster.prepare)
            await self._retrying("create topics", self._ensure_topics)
            self.producer = AIOKafkaProducer(
                bootstrap_servers=s.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                request_timeout_ms=15_000, max_batch_size=256 * 1024,
            )
            await self._retrying("start producer", self.producer.start)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=s.kafka_bootstrap, group_id=s.consumer_group, enable_auto_commit=False,
                auto_offset_reset="earliest", session_timeout_ms=s.stream_session_timeout_ms,
                heartbeat_interval_ms=max(500, s.stream_session_timeout_ms // 5),
                max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_wait_ms=s.stream_poll_ms,
                request_timeout_ms=max(40_000, s.stream_session_timeout_ms + 5000),
            )
            self._consumer = consumer
            consumer.subscribe([s.topic_observations, s.topic_requests, s.topic_weather], listener=_Rebalance(self))
            await self._retrying("start consumer", consumer.start)
            logger.info("bridge: consuming %s, %s, %s as group %r (forecasts via %s)", s.topic_observations,
                        s.topic_requests, s.topic_weather, s.consumer_group, s.forecast_via)
            await self._loop(consumer)
            await self._flush_commits()
        except _Stopping:
            pass
        finally:
            if self._commit_task is not None and not self._commit_task.done():
                self._commit_task.cancel()  # only after a failure: those messages are redelivered
            if self._commit_task is not None:
                await asyncio.gather(self._commit_task, return_exceptions=True)
            if consumer is not None:
                await consumer.stop()  # leaves the group: partitions move to the others now
            if self.producer is not None:
                await self.producer.stop()
            await self.state.close()
            await self.cache.close()
            self.ledger.close()
            await self.forecaster.close()
            self.metrics.close()
            logger.info("bridge: stopped; %s", self.metrics.snapshot())

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        periodic = PeriodicLog(self.metrics, self.settings.stream_metrics_every_s)
        while not self._stopping.is_set():
            if self._to_check:
                async with self._inflight:
                    await self._retrying("restore check", lambda: self._check_assigned(consumer))
            batch = await consumer.getmany(
                timeout_ms=self.settings.stream_poll_ms, max_records=self.settings.stream_max_records
            )
            if batch:
                async with self._inflight:
                    await self._retrying("process batch", lambda: self._handle(batch), drain=True)
                    self._commit_soon({tp: msgs[-1].offset + 1 for tp, msgs in batch.items()})
            self._update_lag(consumer)
            periodic.maybe_log()

    async def _retrying(self, what: str, fn: Callable[[], Awaitable[T]], *, drain: bool = False) -> T:
        """Run ``fn`` until it succeeds; transient failures back off exponentially (capped).

        A stop request ends the retries (raising :class:`_Stopping`, so nothing is
        committed); with ``drain`` a first attempt is still made after a stop request,
        which is how the batch in flight is finished on SIGTERM.
        """
        delay = 0.1
        while True:
            if self._stopping.is_set() and not drain:
                raise _Stopping
            try:
                return await fn()
            except self._transient as exc:
                if self._stopping.is_set():
                    raise _Stopping from exc
                self.metrics.inc("retries")
                logger.warning("bridge: %s failed (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc, delay)
                try:
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, self.settings.stream_backoff_max_s)

    def _commit_soon(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit a finished batch's offsets off the critical path, one commit in flight at a time.

        The batch's writes and publishes are already acknowledged, so committing in the
        background only moves the commit's round trip out of the next batch's latency.
        Offsets of batches finished while a commit is in flight are merged into the next
        one (newer offsets win), so commits never go backwards. A failed commit raises
        here, at the next batch (fail loudly).
        """
        self._to_commit.update(offsets)
        if self._commit_task is not None and not self._commit_task.done():
            return
        if self._commit_task is not None:
            self._commit_task.result()
        pending, self._to_commit = self._to_commit, {}
        self._commit_task = asyncio.create_task(self._commit(self._consumer, pending))

    async def _flush_commits(self) -> None:
        """Wait for the commit in flight, then commit what is left (rebalance, shutdown)."""
        if self._commit_task is not None:
            await self._commit_task
            self._commit_task = None
        if self._to_commit:
            pending, self._to_commit = self._to_commit, {}
            await self._commit(self._consumer, pending)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        mine = {tp: off for tp, off in offsets.items() if tp in consumer.assignment()}
        if not mine:
            return
        try:
            await self._retrying("commit", lambda: asyncio.wait_for(consumer.commit(mine), timeout=30), drain=True)
        except CommitFailedError:
            # the group moved on while we worked: the new owner gets these messages again,
            # which the idempotent writes make harmless
            logger.warning("bridge: commit failed after a rebalance; the messages will be redelivered")
            return
        self._next_offset.update(mine)
        self.metrics.inc("commits")

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None and tp in self._next_offset:
                self.metrics.set_lag(f"{tp.topic}[{tp.partition}]", max(0, high - self._next_offset[tp]))

    async def _ensure_topics(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        s = self.settings
        wanted = [s.topic_observations, s.topic_requests, s.topic_forecasts, s.topic_dead_letter, s.topic_weather]
        admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                # replication factor 1: the project's broker is a single node (scripts/kafka.sh).
                # The observations topic is the state's log: it keeps at least the history window.
                await admin.create_topics([
                    NewTopic(t, s.topic_partitions, 1, topic_configs=(
                        {"retention.ms": str(retention_ms(s))} if t == s.topic_observations else {}))
                    for t in missing
                ])
                logger.info("bridge: created topics %s with %d partitions", ", ".join(missing), s.topic_partitions)
        finally:
            await admin.close()

    # ---- restore from the log ------------------------------------------------------------
    async def _check_assigned(self, consumer: AIOKafkaConsumer) -> None:
        """After an assignment: restore the partitions whose Redis marker is behind the group's offset."""
        tps = sorted(self._to_check & consumer.assignment(), key=lambda tp: tp.partition)
        committed = {tp: await consumer.committed(tp) for tp in tps}
        have = await self.state.applied(self.settings.topic_observations, [tp.partition for tp in tps])
        behind = {tp: off for tp, off in committed.items()
                  if off and (have.get(tp.partition) is None or have[tp.partition] < off)}
        if behind:
            await self._restore(behind)
            await self.state.mark_applied(self.settings.topic_observations,
                                          {tp.partition: off for tp, off in behind.items()})
        self._to_check.clear()

    async def _restore(self, upto: Mapping[TopicPartition, int]) -> None:
        """Re-apply each partition's history window, up to (not including) its offset, from Kafka.

        Where to start: the newest observation before ``upto`` gives the data time the
        window ends at; ``offsets_for_times(newest - window - max_future_s)`` the first
        offset that may hold a row of it (a message is produced at the earliest
        ``max_future_s`` before its timestamp, or it is dead-lettered). Partitions whose
        log starts later (retention) start at their beginning. A missing or invalid
        newest observation means "read the whole retained log".
        """
        s = self.settings
        self._windows.clear()
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
            if not wanted:
                return
            starts: dict[TopicPartition, int] = {}
            for tp, end in wanted.items():
                newest = await self._epoch_at(consumer, tp, end - 1)
                starts[tp] = begin[tp]
                if newest is not None:
                    target_ms = max(0, (newest - window_s(s) - s.max_future_s) * 1000)
                    found = (await consumer.offsets_for_times({tp: target_ms}))[tp]
                    starts[tp] = max(begin[tp], found.offset if found is not None else end)
            total = 0
            for tp, end in wanted.items():
                total += await self._reapply(consumer, tp, starts[tp], end)
            self.restores += 1
            self.restored_messages += total
            logger.warning("bridge: Redis was behind Kafka; restored %d observations of %s", total,
                           ", ".join(f"{tp.topic}[{tp.partition}]@{starts[tp]}..{end}" for tp, end in wanted.items()))
        finally:
            await consumer.stop()

    async def _epoch_at(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> int | None:
        """The data timestamp of the observation at ``offset`` (None if it is invalid or gone)."""
        consumer.seek(tp, offset)
        batch = await consumer.getmany(tp, timeout_ms=10_000, max_records=1)
        for msg in batch.get(tp, []):
            try:
                return parse_observation(msg.value, settings=self.settings, now_s=self.clock()).epoch
            except InvalidMessage:
                return None
        return None

    async def _reapply(self, consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int) -> int:
        """Write the valid observations of ``tp`` in ``[start, end)`` again (idempotent, trimmed)."""
        consumer.seek(tp, start)
        n = 0
        position = start
        while position < end:
            batch = await consumer.getmany(tp, timeout_ms=10_000, max_records=self.settings.stream_max_records)
            msgs = [m for m in batch.get(tp, []) if m.offset < end]
            if not batch.get(tp):
                if await consumer.position(tp) >= end:
                    break  # only control records were left
                raise KafkaError(f"restore of {tp.topic}[{tp.partition}] stalled at offset {position}")
            rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
            now = self.clock()
            for msg in msgs:
                try:
                    obs = parse_observation(msg.value, settings=self.settings, now_s=now)
                except InvalidMessage:
                    continue  # dead-lettered when it was first consumed
                rows[obs.region].append((obs.epoch, obs.doc))
            await self.state.add_many(rows)
            n += len(msgs)
            position = await consumer.position(tp)
        return n

    # ---- one batch -------------------------------------------------------------------
    async def _handle(self, batch: Mapping[TopicPartition, Sequence[Any]]) -> None:
        s = self.settings
        now = self.clock()
        rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
        triggers: dict[str, _Trigger] = {}
        requests: list[tuple[Job, _Trigger]] = []
        vintages = []
        dead: list[tuple[Any, InvalidMessage]] = []
        consumed = 0
        for tp, messages in batch.items():
            consumed += len(messages)
            for msg in messages:
                try:
                    if tp.topic == s.topic_observations:
                        obs = parse_observation(msg.value, settings=s, now_s=now)
                        rows[obs.region].append((obs.epoch, obs.doc))
                        seen = triggers.get(obs.region)
                        if seen is None or obs.epoch >= seen.epoch:
                            triggers[obs.region] = _Trigger(obs.epoch, tp.topic, tp.partition, msg.offset, msg.timestamp)
                    elif tp.topic == s.topic_weather:
                        vintages.append(parse_weather(msg.value, settings=s))
                    else:
                        request_id, query = parse_request(msg.value, settings=s)
                        job = Job(region=query["region"], horizon=query["horizon"], level=tuple(query["level"]),
                                  model=query["model"], request_id=request_id, query=query)
                        requests.append((job, _Trigger(0, tp.topic, tp.partition, msg.offset, msg.timestamp)))
                except InvalidMessage as exc:
                    dead.append((msg, exc))

        await self._dead_letter(dead)
        if vintages:  # before this batch's forecasts: they use the newest vintage (older ones are ignored)
            await self.state.set_weathers(vintages)
            self.metrics.inc("vintages", len(vintages))
        obs_tps = {tp: msgs for tp, msgs in batch.items() if tp.topic == s.topic_observations and msgs}
        written, before = await self.state.add_many_applied(
            rows, s.topic_observations, {tp.partition: msgs[-1].offset + 1 for tp, msgs in obs_tps.items()})
        behind = {tp: msgs[0].offset for tp, msgs in obs_tps.items() if msgs[0].offset > 0
                  and (before.get(tp.partition) is None or before[tp.partition] < msgs[0].offset)}
        if behind:
            await self._restore(behind)  # before any forecast: Redis must hold the window again
        self._windows.apply(rows, written)
        # every actual (a redelivered one too: scoring is idempotent) scores the forecasts it completes
        self.metrics.inc("scored", await asyncio.to_thread(self._score, rows))
        due = [r for r, (_, last, _) in written.items() if last is not None and last > self._origin.get(r, -1)]
        jobs = [Job(region=r, horizon=s.stream_horizon, level=tuple(s.levels), model=s.stream_model) for r in due]
        all_jobs = jobs + [job for job, _ in requests]
        if all_jobs:
            regions = sorted({j.region for j in all_jobs})
            histories = await self._windows.histories(self.state, regions, keep=set(due))
            if getattr(self.forecaster, "reads_weather", False):
                weather = await self.state.latest_weathers(regions)
                results = await self.forecaster.forecast(all_jobs, histories, weather)
            else:
                results = await self.forecaster.forecast(all_jobs, histories)
            trigger_of = [triggers[j.region] for j in jobs] + [t for _, t in requests]
            await self._deliver(all_jobs, results, trigger_of)
        for region in due:
            self._origin[region] = written[region][1]
        valid = consumed - len(dead)
        self.metrics.inc("consumed", consumed)
        self.metrics.inc("processed", valid)
        if dead:
            self.metrics.inc("dead_lettered", len(dead))

    def _score(self, rows: Mapping[str, list[tuple[int, str]]]) -> int:
        n = 0
        for region, encoded in rows.items():
            actuals = [(epoch, load) for epoch, doc in encoded
                       if (load := orjson.loads(doc).get("load_mw")) is not None]
            n += self.ledger.score(region, actuals)
        return n

    async def _dead_letter(self, dead: list[tuple[Any, InvalidMessage]]) -> None:
        if not dead:
            return
        futures = []
        for msg, exc in dead:
            headers = [
                ("reason", exc.reason.encode()),
                ("source.topic", msg.topic.encode()),
                ("source.partition", str(msg.partition).encode()),
                ("source.offset", str(msg.offset).encode()),
            ]
            if exc.field:
                headers.append(("field", exc.field.encode()))
            logger.info("bridge: dead-letter %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, exc.reason)
            futures.append(await self.producer.send(self.settings.topic_dead_letter, value=msg.value, key=msg.key,
                                                    headers=headers))
        await asyncio.gather(*futures)

    async def _deliver(self, jobs: Sequence[Job], results: Sequence[dict], triggers: Sequence[_Trigger]) -> None:
        """Cache, then publish, every result; raises (→ retry, no commit) if either fails."""
        s = self.settings
        items: list[tuple[str, bytes, int]] = []
        messages: list[tuple[str, bytes]] = []
        answered = 0
        for job, result, trig in zip(jobs, results, triggers, strict=True):
            result = dict(result, request_id=job.request_id, trigger={
                "topic": trig.topic, "partition": trig.partition, "offset": trig.offset,
                "produced_ms": trig.produced_ms,
            })
            payload = orjson.dumps(result, default=_json_default)  # once: cache keys and topic share the bytes
            if "error" in result:
                self.metrics.inc("forecast_errors")
                if job.request_id is None:
                    logger.debug("bridge: no forecast for %s: %s", job.region, result["detail"])
                    continue
            else:
                origin = pd.Timestamp(result["origin"])
                issued = result.get("weather_issued_at")
                token = vintage_token(origin.isoformat(), int(pd.Timestamp(issued).timestamp()) if issued else None)
                key = cache_key(job.region, result["model"], result["model_version"], token, job.horizon, job.level)
                items.append((key, payload, self._ttl(origin)))
                if job.request_id is None:
                    items.append((latest_forecast_key(job.region), payload, s.cache_ttl_s))
            answered += job.request_id is not None
            messages.append((job.region, payload))
        await self.cache.set_many(items)
        # what is published is kept to be scored (not answers from a request's own history)
        records = [ForecastRecord.from_document(r) for r in results
                   if "error" not in r and r.get("history_source") != "request"]
        await asyncio.to_thread(self.ledger.record, [r for r in records if r is not None])
        futures = [await self.producer.send(s.topic_forecasts, value=v, key=k.encode()) for k, v in messages]
        await asyncio.gather(*futures)
        done_ms = time.time() * 1000
        for job, result, trig in zip(jobs, results, triggers, strict=True):
            if job.request_id is None and "error" not in result:
                self.metrics.inc("forecasts")
                self.metrics.observe_latency(max(0.0, done_ms - trig.produced_ms))
        self.metrics.inc("requests_answered", answered)

    def _ttl(self, origin: pd.Timestamp) -> int:
        """Until the next data point is due (origin + 2 steps), capped by ``cache_ttl_s``."""
        due = origin.timestamp() + 2 * self.settings.stream_step_s
        left = due - self.clock()
        return int(min(self.settings.cache_ttl_s, left)) if left >= 1 else self.settings.cache_ttl_s


async def run_bridge(settings: Settings) -> BridgeMetrics:
    """Run a bridge until SIGTERM/SIGINT; the CLI's entry point."""
    import signal

    bridge = Bridge(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, bridge.stop)
    await bridge.run()
    return bridge.metrics
