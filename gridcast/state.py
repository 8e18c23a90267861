"""The state store: the recent observations of every region, shared by service and bridge.

The bridge writes observations as they arrive from Kafka; the service reads a region's
recent history to forecast from it. Writes are idempotent by ``(region, timestamp)``:
Kafka delivers at least once, so a replayed or duplicated message must change nothing
(a corrected value for the same timestamp overwrites; it is not counted as new).

The stores: :class:`InMemoryStateStore` (the embedded default, tests) here, and the
Redis ones (the service's sync store, the bridge's async one) in
:mod:`gridcast.state_redis`, which also documents the key layout; :mod:`gridcast.stores`
picks one from the settings.

Each region keeps at most ``settings.state_max_points`` rows: the script trims the
oldest, and ignores a replayed row older than everything kept (it was trimmed on
purpose, so it must not count as new).

Example:
    >>> import pandas as pd
    >>> store = InMemoryStateStore(max_points=48)
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC", name="timestamp")
    >>> frame = pd.DataFrame({"load_mw": [1.0, 2.0, 3.0], "temperature_c": 20.0}, index=idx)
    >>> store.add_observations("north", frame), store.add_observations("north", frame)
    (3, 0)
    >>> store.history("north", n=2)["load_mw"].tolist()
    [2.0, 3.0]
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from gridcast.errors import GridcastError
from gridcast.schema import ALL_COLUMNS, LOAD, REGION, TEMPERATURE, TIMESTAMP
from gridcast.series import Series
from gridcast.weather import Vintage

logger = logging.getLogger(__name__)

#: value columns a row may carry (everything canonical except the keys)
VALUE_COLUMNS: tuple[str, ...] = tuple(c for c in ALL_COLUMNS if c not in (TIMESTAMP, REGION))

class StateStoreUnavailable(GridcastError):
    """The state store (Redis) cannot be reached; callers retry or answer 503."""

    code = "state_unavailable"


class StateStore(Protocol):
    """What the service and the bridge need from a state store."""

    def add_observations(self, region: str, frame: pd.DataFrame) -> int: ...

    def history(self, region: str, n: int | None = None) -> pd.DataFrame: ...

    def regions(self) -> list[str]: ...

    def last_timestamp(self, region: str) -> pd.Timestamp | None: ...


# ---- serialisation (one format for every store) ---------------------------------------


def encode_rows(frame: pd.DataFrame) -> list[tuple[int, str]]:
    """``[(epoch_seconds, json)]`` for each row of a region frame.

    ``frame`` has a UTC ``DatetimeIndex`` or a ``timestamp`` column; value columns not
    in the canonical schema are ignored, missing values are left out of the JSON.
    """
    if TIMESTAMP in frame.columns:
        frame = frame.set_index(TIMESTAMP)
    index = pd.DatetimeIndex(frame.index)
    if index.tz is None:
        raise ValueError("observation timestamps must be timezone-aware (UTC)")
    epochs = (index.tz_convert("UTC").as_unit("s").asi8).tolist()
    cols = [c for c in VALUE_COLUMNS if c in frame.columns]
    values = frame[cols].to_numpy(dtype=float, na_value=np.nan) if cols else np.empty((len(frame), 0))
    out = []
    for epoch, row in zip(epochs, values, strict=True):
        doc = {c: float(v) for c, v in zip(cols, row, strict=True) if math.isfinite(v)}
        out.append((int(epoch), json.dumps(doc, separators=(",", ":"))))
    return out


def decode_rows(epochs: Iterable[int], docs: Iterable[str | bytes | None]) -> pd.DataFrame:
    """The inverse of :func:`encode_rows`: a frame on a UTC index named ``timestamp``.

    Built column by column (not row by row): the bridge decodes thousands of rows per batch.
    """
    ts: list[int] = []
    kept: list[str] = []
    for epoch, doc in zip(epochs, docs, strict=True):
        if doc is None:  # trimmed between the index read and the hash read
            continue
        ts.append(int(epoch))
        kept.append(doc.decode() if isinstance(doc, bytes) else doc)
    # one parse of a JSON array is ~10x faster than one json.loads per row
    return frame_from_rows(ts, json.loads("[" + ",".join(kept) + "]"))


def row_columns(rows: Sequence[dict]) -> dict[str, np.ndarray]:
    """The value columns of parsed row documents: load and temperature always, other value
    columns when any row has them (NaN where a row lacks one), in schema order."""
    present = set().union(*rows) if rows else set()
    return {c: np.array([r.get(c, np.nan) for r in rows], dtype=float)
            for c in VALUE_COLUMNS if c in present or c in (LOAD, TEMPERATURE)}


def frame_from_rows(ts: Sequence[int], rows: Sequence[dict]) -> pd.DataFrame:
    """A region frame from epoch seconds and parsed row documents (same order; :func:`row_columns`)."""
    index = pd.DatetimeIndex(np.array(ts, dtype="int64") * 1_000_000_000, tz="UTC", name=TIMESTAMP)
    return pd.DataFrame(row_columns(rows), index=index)


def series_from_rows(ts: Sequence[int], rows: Sequence[dict], *, step: int) -> Series | None:
    """``Series.from_frame(frame_from_rows(ts, rows), step=step)`` without the frame (None: no rows).

    The same columns as :func:`frame_from_rows` (load and temperature always, other
    value columns when any row has them), on the ``step`` grid.
    """
    if not len(ts):
        return None
    return Series.from_epochs(ts, row_columns(rows), step=step)


def _limit(n: int | None, max_points: int) -> int:
    return max_points if n is None else max(0, min(int(n), max_points))


# ---- in-process (embedded default, tests) -----------------------------------------------


class InMemoryStateStore:
    """A thread-safe dict-backed store with the same semantics as :class:`RedisStateStore`."""

    def __init__(self, *, max_points: int = 24 * 7 * 10) -> None:
        self.max_points = max_points
        self._rows: dict[str, dict[int, str]] = {}
        self._last: dict[str, int] = {}  # newest epoch per region: read by every forecast request
        self._weather: dict[str, Vintage] = {}
        self._lock = threading.Lock()

    def set_weather(self, vintage: Vintage) -> bool:
        """Keep ``vintage`` as the region's latest unless a later-issued one is held; True if kept."""
        with self._lock:
            held = self._weather.get(vintage.region)
            if held is not None and held.issued_at >= vintage.issued_at:
                return False
            self._weather[vintage.region] = vintage
            return True

    def latest_weather(self, region: str) -> Vintage | None:
        """The latest weather-forecast vintage of ``region`` (None: none received)."""
        with self._lock:
            return self._weather.get(region)

    def add_observations(self, region: str, frame: pd.DataFrame) -> int:
        return self.add_rows(region, encode_rows(frame))[0]

    def add_rows(self, region: str, rows: list[tuple[int, str]]) -> tuple[int, int | None]:
        """Add encoded rows; ``(new_rows, last_epoch)`` as the Redis script returns them."""
        with self._lock:
            stored = self._rows.setdefault(region, {})
            oldest = min(stored) if len(stored) >= self.max_points else None
            new = 0
            for epoch, doc in rows:
                if oldest is not None and epoch < oldest:
                    continue
                new += epoch not in stored
                stored[epoch] = doc
            for epoch in sorted(stored)[: max(0, len(stored) - self.max_points)]:
                del stored[epoch]
            last = max(stored) if stored else None
            if last is not None:
                self._last[region] = last
            return new, last

    def history(self, region: str, n: int | None = None) -> pd.DataFrame:
        with self._lock:
            stored = self._rows.get(region, {})
            k = _limit(n, self.max_points)
            epochs = sorted(stored)[-k:] if k else []
            docs = [stored[e] for e in epochs]
        return decode_rows(epochs, docs)

    def regions(self) -> list[str]:
        with self._lock:
            return sorted(r for r, rows in self._rows.items() if rows)

    def last_timestamp(self, region: str) -> pd.Timestamp | None:
        last = self._last.get(region)  # one dict read: rows are only ever added (and trimmed from the oldest)
        return None if last is None else pd.Timestamp(last, unit="s", tz="UTC")

    def count(self, region: str) -> int:
        """Rows held for ``region`` (tests, benchmarks)."""
        with self._lock:
            return len(self._rows.get(region, {}))


# ---- Redis (the deployment) ----------------------------------------------------------------
