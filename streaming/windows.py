"""The newest rows per region in the bridge's memory, so a forecast does not re-read Redis."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import orjson

from gridcast.series import Series
from gridcast.state import VALUE_COLUMNS, row_columns, series_from_rows
from gridcast.state_redis import AsyncRedisStateStore

logger = logging.getLogger(__name__)


class _Window:
    """One region's newest rows: the rows by epoch (the truth) and the same rows as column arrays.

    The arrays are what :func:`series_from_rows` would build from the rows, kept up to
    date as rows are appended (buffers of twice the window, the rows at ``[lo:hi]``), so
    a poll costs its new rows rather than the whole window. A row that is not after the
    newest (a rewrite, or one out of order) drops the arrays; they are rebuilt from the
    rows at the next read.
    """

    __slots__ = ("rows", "n", "epochs", "columns", "lo", "hi")

    def __init__(self, rows: dict[int, dict], n: int) -> None:
        self.rows = rows
        self.n = n
        self.epochs: np.ndarray | None = None  # None: rebuild from the rows
        self.columns: dict[str, np.ndarray] = {}
        self.lo = self.hi = 0

    def add(self, new: Sequence[tuple[int, dict]]) -> None:
        new = sorted(new, key=lambda r: r[0])
        epochs = [e for e, _ in new]
        appendable = (self.epochs is not None and (self.hi == self.lo or epochs[0] > self.epochs[self.hi - 1])
                      and all(a < b for a, b in zip(epochs, epochs[1:])) and len(new) <= self.n)
        for epoch, row in new:
            self.rows[epoch] = row
        if appendable:
            self._append(epochs, [row for _, row in new])
        else:
            self.epochs = None
        if len(self.rows) > self.n:
            old = sorted(self.rows)[: len(self.rows) - self.n]
            for epoch in old:
                del self.rows[epoch]
            if self.epochs is not None:  # the oldest rows are the arrays' first ones
                self.lo += len(old)

    def _append(self, epochs: list[int], rows: list[dict]) -> None:
        k, cap = len(epochs), len(self.epochs)
        if self.hi + k > cap:  # move the rows held to the front of the buffers
            held = self.hi - self.lo
            self.epochs[:held] = self.epochs[self.lo:self.hi]
            for values in self.columns.values():
                values[:held] = values[self.lo:self.hi]
            self.lo, self.hi = 0, held
        for name in set().union(*rows) - self.columns.keys():
            if name in VALUE_COLUMNS:  # a column no row had before: NaN in the rows before these
                self.columns[name] = np.full(cap, np.nan)
        span = slice(self.hi, self.hi + k)
        self.epochs[span] = epochs
        for name, values in self.columns.items():
            values[span] = [r.get(name, np.nan) for r in rows]
        self.hi += k

    def series(self, step: int) -> Series | None:
        if self.epochs is None:  # rebuild: the columns series_from_rows gives, in buffers
            epochs = sorted(self.rows)
            cap = 2 * max(self.n, len(epochs))
            self.epochs, self.lo, self.hi = np.zeros(cap, dtype=np.int64), 0, len(epochs)
            self.epochs[: self.hi] = epochs
            self.columns = {}
            for c, values in row_columns([self.rows[e] for e in epochs]).items():
                self.columns[c] = np.full(cap, np.nan)
                self.columns[c][: self.hi] = values
        if self.hi == self.lo:
            return None
        held = slice(self.lo, self.hi)
        columns = {c: self.columns[c][held] for c in VALUE_COLUMNS if c in self.columns}
        return Series.from_epochs(self.epochs[held], columns, step=step)


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
        self._windows: dict[str, _Window] = {}
        self._held: dict[str, int] = {}

    def clear(self) -> None:
        self._windows.clear()
        self._held.clear()

    def apply(self, rows: Mapping[str, list[tuple[int, str]]], written: Mapping[str, tuple[int, int | None, int]]) -> None:
        for region, (new, _, held) in written.items():
            window = self._windows.get(region)
            if window is None:
                continue
            if min(self._held[region] + new, self.max_points) != held:
                logger.info("bridge: %s was written elsewhere; re-reading its window", region)
                del self._windows[region], self._held[region]
                continue
            if rows[region]:
                window.add([(epoch, orjson.loads(doc)) for epoch, doc in rows[region]])
            self._held[region] = held

    async def histories(
        self, state: AsyncRedisStateStore, regions: Sequence[str], *, keep: set[str], step: int
    ) -> dict[str, Series | None]:
        """Histories of ``regions`` on the ``step`` grid (None: no rows); windows are kept only
        for ``keep`` (regions this bridge writes).

        A region read only to answer a request may be written by another bridge, so its
        rows are read fresh every time and not kept. A kept window's columns grow with its
        rows (:class:`_Window`); the arrays equal :func:`~gridcast.state.series_from_rows`
        of the rows (tests/streaming/test_windows.py checks it). No DataFrame per region and poll.
        """
        missing = [r for r in regions if r not in self._windows]
        out: dict[str, Series | None] = {}
        if missing:
            for region, (epochs, docs, held) in (await state.tails(missing, self.n)).items():
                rows = {e: orjson.loads(d) for e, d in zip(epochs, docs, strict=True) if d is not None}
                if region in keep:
                    self._windows[region], self._held[region] = _Window(rows, self.n), held
                else:
                    ordered = sorted(rows)
                    out[region] = series_from_rows(ordered, [rows[e] for e in ordered], step=step)
        for region in regions:
            if region in self._windows:
                out[region] = self._windows[region].series(step)
            else:
                out.setdefault(region, None)
        return out
