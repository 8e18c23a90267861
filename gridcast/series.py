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
from collections.abc import Mapping
from dataclasses import dataclass

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
        h = hashlib.blake2b(digest_size=8)
        h.update(np.array([self.start, self.step], dtype=np.int64).tobytes())
        for name in sorted(self.columns):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.columns[name], dtype=np.float64).tobytes())
        return h.hexdigest()

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
        epochs = index.as_unit("s").asi8
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
        columns = {}
        for name in frame.columns:
            values = np.full(n, np.nan)
            values[pos] = frame[name].to_numpy(dtype=float)[order]
            columns[str(name)] = values
        return cls(start, int(step), columns)

    def to_frame(self) -> pd.DataFrame:
        index = pd.DatetimeIndex(pd.to_datetime(self.epochs(), unit="s", utc=True), name=TIMESTAMP_NAME).as_unit("ns")
        return pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in self.columns.items()}, index=index)


def iso_stamps(start: int, step: int, n: int) -> list[str]:
    """``n`` UTC ISO 8601 timestamps (``…+00:00``) from ``start`` every ``step`` seconds, vectorised."""
    stamps = (np.int64(start) + np.int64(step) * np.arange(n, dtype=np.int64)).astype("datetime64[s]")
    return [s + "+00:00" for s in np.datetime_as_string(stamps, unit="s").tolist()]


def iso(epoch: int) -> str:
    return iso_stamps(epoch, 1, 1)[0]
