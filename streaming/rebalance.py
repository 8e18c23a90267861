"""The bridge's consumer-group rebalance listener: a batch in flight commits before its partitions go."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition

logger = logging.getLogger("streaming.bridge")


class Rebalance(ConsumerRebalanceListener):
    """Waits for the bridge's batch in flight (its scoring and commit) before partitions are revoked."""

    def __init__(self, bridge: Any) -> None:  # a streaming.bridge.Bridge (no import: no cycle)
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
