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
5. score the batch's actuals against the held forecasts they complete (the ledger,
   :mod:`gridcast.scoring`) while the next batch is fetched and forecast (one scoring in
   flight), and only then commit ``offset + 1`` per partition.

A failure in 2–4 (Redis, Kafka or the service away) retries the WHOLE batch, one in
5 its scoring, with backoff until it succeeds — nothing is committed before, so
nothing is lost, and the writes are idempotent, so nothing is doubled. A region's intermediate points
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
(``retention.ms``) that covers the window with margin (:func:`streaming.restore.retention_ms`).
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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from gridcast.cache import AsyncRedisForecastCache, cache_key, latest_forecast_key
from gridcast.forecast import cache_ttl, vintage_token
from gridcast.scoring import ForecastRecord, RedisLedger
from gridcast.state import StateStoreUnavailable
from gridcast.state_redis import AsyncRedisStateStore
from gridcast.stores import make_async_state_store
from streaming.forecasting import ForecastUnavailable, Job, StreamForecaster, make_forecaster
from streaming.rebalance import Rebalance
from streaming.restore import ensure_topics, restore_window
from streaming.windows import Windows
from streaming.messages import InvalidMessage, json_default, parse_observation, parse_request
from streaming.vintages import parse_weather
from streaming.metrics import BridgeMetrics, LiveRefresh, PeriodicLog
from gridcast.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: failures that mean "something is away for now": retry the batch, never commit past it
TRANSIENT: tuple[type[BaseException], ...] = (KafkaError, OSError, StateStoreUnavailable, ForecastUnavailable,
                                              asyncio.TimeoutError)


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


@dataclass
class _Handled:
    """A batch after its writes and forecasts: its actuals by region, still to be scored, and its counts."""

    rows: dict[str, list[tuple[int, str]]]
    consumed: int
    dead: int


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
        self.live = LiveRefresh(self.metrics, every_s=s.stream_metrics_every_s, bands=s.score_lead_bands)
        self.assigned: set[TopicPartition] = set()
        self._inflight = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._origin: dict[str, int] = {}  # region -> origin (epoch) of the last forecast published
        steps = s.max_history_points if s.forecast_via != "naive" else 14 * 86400 // s.stream_step_s
        self._windows = Windows(steps, s.state_max_points)
        self._next_offset: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._commit_task: asyncio.Task | None = None
        self._score_task: asyncio.Task | None = None
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
            consumer.subscribe([s.topic_observations, s.topic_requests, s.topic_weather], listener=Rebalance(self))
            await self._retrying("start consumer", consumer.start)
            logger.info("bridge: consuming %s, %s, %s as group %r (forecasts via %s)", s.topic_observations,
                        s.topic_requests, s.topic_weather, s.consumer_group, s.forecast_via)
            await self._loop(consumer)
            await self._flush_commits()
        except _Stopping:
            pass
        finally:
            tasks = [t for t in (self._score_task, self._commit_task) if t is not None]
            for task in tasks:
                task.cancel()  # unfinished only after a failure: those messages are redelivered
            await asyncio.gather(*tasks, return_exceptions=True)
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
                    handled = await self._retrying("process batch", lambda: self._handle(batch), drain=True)
                    await self._score_soon(handled, {tp: msgs[-1].offset + 1 for tp, msgs in batch.items()})
            self._update_lag(consumer)
            await self.live.maybe_refresh(self.ledger)
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
        """Wait for the scoring and the commit in flight, then commit what is left (rebalance, shutdown)."""
        await self._scored()
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
        await ensure_topics(self.settings)

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
        """Re-apply each partition's history window from Kafka (:func:`streaming.restore.restore_window`)."""
        self._windows.clear()
        total, spans = await restore_window(self.settings, self.state, upto, clock=self.clock)
        if spans:
            self.restores += 1
            self.restored_messages += total
            logger.warning("bridge: Redis was behind Kafka; restored %d observations of %s", total,
                           ", ".join(f"{tp.topic}[{tp.partition}]@{a}..{z}" for tp, (a, z) in spans.items()))

    # ---- one batch -------------------------------------------------------------------
    async def _handle(self, batch: Mapping[TopicPartition, Sequence[Any]]) -> _Handled:
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
        due = [r for r, (_, last, _) in written.items() if last is not None and last > self._origin.get(r, -1)]
        jobs = [Job(region=r, horizon=s.stream_horizon, level=tuple(s.levels), model=s.stream_model) for r in due]
        all_jobs = jobs + [job for job, _ in requests]
        if all_jobs:
            regions = sorted({j.region for j in all_jobs})
            histories = await self._windows.histories(self.state, regions, keep=set(due), step=s.stream_step_s)
            if getattr(self.forecaster, "reads_weather", False):
                weather = await self.state.latest_weathers(regions)
                results = await self.forecaster.forecast(all_jobs, histories, weather)
            else:
                results = await self.forecaster.forecast(all_jobs, histories)
            trigger_of = [triggers[j.region] for j in jobs] + [t for _, t in requests]
            await self._deliver(all_jobs, results, trigger_of)
        for region in due:
            self._origin[region] = written[region][1]
        return _Handled(rows, consumed, len(dead))  # scored by _score_soon, while the next batch is fetched

    async def _score_soon(self, handled: _Handled, offsets: dict[TopicPartition, int]) -> None:
        """Score a handled batch's actuals in the background, then count it processed and commit it.

        Every actual (a redelivered one too: scoring is idempotent) scores the forecasts it
        completes, after its batch's forecasts are out and before its commit, so none is
        lost. One scoring at a time, in batch order (bounded; commits never go backwards):
        it overlaps the next batch's fetch and forecasts only.
        """
        await self._scored()
        self._score_task = asyncio.create_task(self._score_then_commit(handled, offsets))

    async def _score_then_commit(self, handled: _Handled, offsets: dict[TopicPartition, int]) -> None:
        if handled.rows:
            n = await self._retrying("score", lambda: asyncio.to_thread(self._score, handled.rows), drain=True)
            self.metrics.inc("scored", n)
        self.metrics.inc("consumed", handled.consumed)
        self.metrics.inc("processed", handled.consumed - handled.dead)
        if handled.dead:
            self.metrics.inc("dead_lettered", handled.dead)
        self._commit_soon(offsets)

    async def _scored(self) -> None:
        """Wait for the scoring in flight (its error, if any, is raised here: fail loudly)."""
        task, self._score_task = self._score_task, None
        if task is not None:
            await task

    def _score(self, rows: Mapping[str, list[tuple[int, str]]]) -> int:
        """Score the batch's actuals, every region in one pipelined pass; the number of points scored."""
        actuals = {region: [(epoch, load) for epoch, doc in encoded
                            if (load := orjson.loads(doc).get("load_mw")) is not None]
                   for region, encoded in rows.items()}
        scored = self.ledger.score_many(actuals)
        self.live.scored([r for r, n in scored.items() if n])
        return sum(scored.values())

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
            payload = orjson.dumps(result, default=json_default)  # once: cache keys and topic share the bytes
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
        """The cache TTL rule of the forecast path (:func:`gridcast.forecast.cache_ttl`)."""
        return cache_ttl(int(origin.timestamp()), self.settings.stream_step_s, now=self.clock(),
                         cap=self.settings.cache_ttl_s)


async def run_bridge(settings: Settings) -> BridgeMetrics:
    """Run a bridge until SIGTERM/SIGINT; the CLI's entry point."""
    import signal

    from gridcast.settings import limit_blas_threads

    limit_blas_threads(settings)  # like the service: one BLAS thread, the forecasts are batched
    bridge = Bridge(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, bridge.stop)
    await bridge.run()
    return bridge.metrics
