"""The newest rows per region in the bridge's memory, so a forecast does not re-read Redis."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import orjson

from gridcast.series import Series
from gridcast.state import series_from_rows
from gridcast.state_redis import AsyncRedisStateStore

logger = logging.getLogger(__name__)


class Windows:
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
        self, state: AsyncRedisStateStore, regions: Sequence[str], *, keep: set[str], step: int
    ) -> dict[str, Series | None]:
        """Histories of ``regions`` on the ``step`` grid (None: no rows); windows are kept only
        for ``keep`` (regions this bridge writes).

        A region read only to answer a request may be written by another bridge, so its
        rows are read fresh every time and not kept. The rows go straight to arrays
        (:func:`~gridcast.state.series_from_rows`): no DataFrame per region and poll.
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
            out[region] = series_from_rows(epochs, [window[e] for e in epochs], step=step)
        return out
