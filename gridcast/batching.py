"""An in-process batcher: concurrent requests' model calls merge into one call.

Continuous batching, the simplest kind that pays: while the model computes one batch
(in a worker thread; TensorFlow and numpy release the GIL), new calls queue up; when
it is done, everything queued (up to ``max_batch``) goes in the next call. An idle
service answers a lone request at once (no timer to wait out); a busy one makes
batches as large as the load. Once ``max_queue`` calls are waiting, a submission is refused
at once with :class:`~gridcast.errors.OverloadedError` (a fast 503 with Retry-After),
so a saturated service sheds load in microseconds instead of timing out.

Example:
    >>> import asyncio
    >>> async def demo():
    ...     b = Batcher(lambda items: [x * 2 for x in items], max_batch=8, max_queue=64)
    ...     return await asyncio.gather(b.submit([1, 2]), b.submit([3]))
    >>> asyncio.run(demo())
    [[2, 4], [6]]
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from gridcast.errors import OverloadedError

logger = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Merge submissions into calls of ``run`` (one at a time, in a worker thread).

    Args:
        run: computes results for a list of items, in order (one call = one batch).
        max_batch: most items in one call (a larger single submission runs alone).
        max_queue: items waiting at which further submissions are refused (a submission
            is taken whole while fewer wait, so the queue stays below ``max_queue`` plus
            the largest submission: a ``/forecast_batch`` of 64 is not refused for its size).
        on_batch: told each batch's size (metrics).
    """

    def __init__(self, run: Callable[[list[T]], Sequence[R]], *, max_batch: int, max_queue: int,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.run = run
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._queue: deque[tuple[list[T], asyncio.Future]] = deque()
        self._queued = 0
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def full(self) -> bool:
        """Whether a submission now would be refused."""
        return self._queued >= self.max_queue

    async def submit(self, items: Sequence[T]) -> list[R]:
        """The results for ``items``, computed in some batch.

        Raises:
            OverloadedError: the queue is full; nothing was queued.
        """
        items = list(items)
        if not items:
            return []
        if self.full:
            raise OverloadedError(
                f"{self._queued} model calls are already waiting (limit {self.max_queue}); retry shortly"
            )
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._worker = loop.create_task(self._work(), name="gridcast-batcher")
        future = loop.create_future()
        self._queue.append((items, future))
        self._queued += len(items)
        self._wake.set()
        return await future

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch: list[T] = []
                parts: list[tuple[int, asyncio.Future]] = []
                while self._queue and (not batch or len(batch) + len(self._queue[0][0]) <= self.max_batch):
                    items, future = self._queue.popleft()
                    self._queued -= len(items)
                    if future.cancelled():
                        continue
                    parts.append((len(items), future))
                    batch.extend(items)
                if not batch:
                    continue
                if self.on_batch is not None:
                    self.on_batch(len(batch))
                try:
                    results = await asyncio.to_thread(self.run, batch)
                except Exception as exc:  # every waiter learns, the worker goes on
                    logger.exception("batched model call failed (%d items)", len(batch))
                    for _, future in parts:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for n, future in parts:
                    if not future.done():
                        future.set_result(list(results[start:start + n]))
                    start += n
