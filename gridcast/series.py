"""A regular time series as arrays: what the forecast path works on after the edge.

Requests, the state store and the models meet on one shape: a start (epoch seconds
of the first row, UTC), a step (seconds) and named float columns (``NaN`` = missing).
Built once at the edge from whatever arrived (a list of observations, a columnar
payload, a DataFrame), it is never turned back into strings or rebuilt per hop: the
models index it with integer arithmetic (``(epoch - start) // step``).

Example:
    >>> import numpy as np
    >>> s = Series(start=0, step=3600, columns={"load_mw": np.array([1.0, 2.0, 3.0])})
    >>> len(s), s.end, s.epochs().tolist()
    (3, 7200, [0, 3600, 7200])
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from gridcast.errors import UserInputError
from gridcast.schema import LOAD

TIMESTAMP_NAME = "timestamp"


@dataclass(frozen=True, eq=False)
class Series:
    """Rows ``start, start + step, …`` with one float64 array per column (equal lengths)."""

    start: int
    step: int
    columns: Mapping[str, np.ndarray]

    def __post_init__(self) -> None:
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            raise UserInputError(f"columns of unequal length: {sorted(lengths)}", field="history")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @property
    def end(self) -> int:
        """Epoch seconds of the last row."""
        return self.start + (len(self) - 1) * self.step

    def epochs(self) -> np.ndarray:
        return self.start + self.step * np.arange(len(self), dtype=np.int64)

    def get(self, name: str) -> np.ndarray | None:
        return self.columns.get(name)

    @property
    def load(self) -> np.ndarray:
        values = self.columns.get(LOAD)
        if values is None:
            raise UserInputError(f"history needs a {LOAD} column", field="history")
        return values

    def tail(self, n: int) -> Series:
        """The last ``n`` rows (all when shorter)."""
        if n >= len(self):
            return self
        cut = len(self) - n
        return Series(self.start + cut * self.step, self.step, {k: v[cut:] for k, v in self.columns.items()})

    def until(self, epoch: int) -> Series:
        """Rows up to and including ``epoch``."""
        keep = int((epoch - self.start) // self.step) + 1
        if keep >= len(self):
            return self
        return Series(self.start, self.step, {k: v[: max(keep, 0)] for k, v in self.columns.items()})

    def digest(self) -> str:
        """A short content hash (start, step, every column): a cache-key part."""
        parts = [struct.pack("<qq", self.start, self.step)]  # the bytes of int64 [start, step]
        for name in sorted(self.columns):
            col = self.columns[name]
            if col.dtype != np.float64 or not col.flags.c_contiguous:
                col = np.ascontiguousarray(col, dtype=np.float64)
            parts += (name.encode(), col.tobytes())
        return hashlib.blake2b(b"".join(parts), digest_size=8).hexdigest()

    # ---- DataFrames (training, backtests, the models' frame API) ---------------------
    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, step: int | None = None) -> Series:
        """A frame on a UTC ``DatetimeIndex`` → a series on its regular grid (holes = NaN).

        Raises:
            UserInputError: an empty frame, a naive index, or no step to put it on.
        """
        if len(frame) == 0:
            raise UserInputError("the series is empty", field="history")
        index = pd.DatetimeIndex(frame.index)
        if index.tz is None:
            raise UserInputError("the time index must be timezone-aware (UTC)", field="timestamp")
        return cls.from_epochs(index.as_unit("s").asi8,
                               {str(name): frame[name].to_numpy(dtype=float) for name in frame.columns}, step=step)

    @classmethod
    def from_epochs(cls, epochs: Sequence[int] | np.ndarray, columns: Mapping[str, np.ndarray], *,
                    step: int | None = None) -> Series:
        """Rows at ``epochs`` (seconds, any order, no repeats) → a series on its regular grid (holes = NaN).

        ``step`` None: the median positive gap. The gridding of :meth:`from_frame`, without a frame.

        Raises:
            UserInputError: no rows, or one row and no step.
        """
        epochs = np.asarray(epochs, dtype=np.int64)
        if not len(epochs):
            raise UserInputError("the series is empty", field="history")
        order = np.argsort(epochs, kind="stable")
        epochs = epochs[order]
        if step is None:
            diffs = np.diff(epochs)
            diffs = diffs[diffs > 0]
            if not len(diffs):
                raise UserInputError("cannot tell the step of a one-row series", field="history")
            step = int(np.median(diffs))
        start = int(epochs[0])
        pos = (epochs - start) // step
        n = int(pos[-1]) + 1
        gridded = {}
        for name, column in columns.items():
            values = np.full(n, np.nan)
            values[pos] = np.asarray(column, dtype=float)[order]
            gridded[name] = values
        return cls(start, int(step), gridded)

    def to_frame(self) -> pd.DataFrame:
        index = pd.DatetimeIndex(pd.to_datetime(self.epochs(), unit="s", utc=True), name=TIMESTAMP_NAME).as_unit("ns")
        return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in self.columns.items()}, index=index)


#: timestamps already written, per (start, step): forecasts from one origin (every
#: client's "next day" from the latest hour) share them; bounded, cleared when full
_STAMPS: dict[tuple[int, int], list[str]] = {}
_STAMPS_MAX = 4096


def iso_stamps(start: int, step: int, n: int) -> list[str]:
    """``n`` UTC ISO 8601 timestamps (``…+00:00``) from ``start`` every ``step`` seconds.

    Written once per ``(start, step)`` (vectorised) and reused: the list returned is
    shared, so callers must not change it.

    Example:
        >>> iso_stamps(0, 3600, 2)
        ['1970-01-01T00:00:00+00:00', '1970-01-01T01:00:00+00:00']
        >>> iso_stamps(0, 3600, 1) == iso_stamps(0, 3600, 2)[:1]
        True
    """
    key = (int(start), int(step))
    have = _STAMPS.get(key)
    if have is not None and len(have) >= n:
        return have if len(have) == n else have[:n]
    stamps = (np.int64(start) + np.int64(step) * np.arange(n, dtype=np.int64)).astype("datetime64[s]")
    out = [s + "+00:00" for s in np.datetime_as_string(stamps, unit="s").tolist()]
    if len(_STAMPS) >= _STAMPS_MAX:
        _STAMPS.clear()
    _STAMPS[key] = out
    return out


@lru_cache(maxsize=4096)  # origins repeat: every cache-key lookup writes its origin
def iso(epoch: int) -> str:
    """One UTC ISO 8601 timestamp, as :func:`iso_stamps` writes them.

    Example:
        >>> iso(0) == iso_stamps(0, 1, 1)[0] == "1970-01-01T00:00:00+00:00"
        True
    """
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


# ---- payloads with their own timestamps, checked onto a model's grid -------------------------


@dataclass(frozen=True, eq=False)
class Points:
    """Rows with their own timestamps, as an object-per-point payload sends them (not yet on a grid)."""

    epochs: np.ndarray
    columns: Mapping[str, np.ndarray]



def on_grid(data: Series | Points, step: int, name: str, *, max_points: int) -> Series:
    """A payload checked against the model's grid: bounded, strictly increasing, no gaps.

    Raises:
        UserInputError: too many points, a step other than the model's, timestamps
            not increasing, off the grid, or a gap (``field`` points at the first bad one).
    """
    n = len(data) if isinstance(data, Series) else len(data.epochs)
    if n == 0:
        raise UserInputError(f"{name} is empty; omit it to use the service's own", field=name)
    if n > max_points:
        raise UserInputError(f"{name} has {n} points; at most {max_points} allowed", field=name)
    if isinstance(data, Series):
        if data.step != step:
            raise UserInputError(f"{name}.step is {data.step} s; the model forecasts every {step} s",
                                 field=f"{name}.step")
        if data.start % step:
            raise UserInputError(f"{name}.start {iso(data.start)} is not on the model's {step} s grid",
                                 field=f"{name}.start")
        return data
    epochs = data.epochs
    off = epochs % step != 0
    if off.any():
        i = int(np.argmax(off))
        raise UserInputError(f"{name}[{i}].timestamp {iso(int(epochs[i]))} is not on the model's {step} s grid",
                             field=f"{name}[{i}].timestamp")
    diffs = np.diff(epochs)
    if (diffs <= 0).any():
        i = int(np.argmax(diffs <= 0)) + 1
        raise UserInputError(
            f"{name} timestamps must be strictly increasing; {name}[{i}] is {iso(int(epochs[i]))} "
            f"after {iso(int(epochs[i - 1]))}", field=f"{name}[{i}].timestamp")
    if (diffs != step).any():
        i = int(np.argmax(diffs != step)) + 1
        raise UserInputError(
            f"{name} has a gap before {name}[{i}] ({iso(int(epochs[i - 1]))} → {iso(int(epochs[i]))}); "
            f"send every step", field=f"{name}[{i}].timestamp")
    return Series(int(epochs[0]), step, dict(data.columns))


def points_from_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Points:
    """Object-per-point rows (mappings with ``timestamp`` and value columns) → :class:`Points`.

    ``timestamp`` is a timezone-aware datetime or an ISO string; a missing key or None
    is a missing value; a column no row carries is left out.
    """
    stamps = [r["timestamp"] for r in rows]
    if stamps and isinstance(stamps[0], str):
        epochs = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True)).as_unit("s").asi8
    else:
        epochs = np.array([t.timestamp() for t in stamps], dtype=np.float64).astype(np.int64)
    present = set().union(*rows) if rows else set()
    out = {}
    for c in columns:
        if c in present:  # numpy reads None as NaN in a float array
            out[c] = np.array([r.get(c) for r in rows], dtype=float)
    return Points(np.asarray(epochs, dtype=np.int64), out)
