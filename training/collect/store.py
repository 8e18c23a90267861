"""The incremental local store: what each collector already has, so it fetches only the rest.

Each series (one source, zone and kind, e.g. ``entsoe/ES/actual``) is a Parquet file of
hourly values on a UTC index plus a JSON file of the *covered* intervals — the ranges
already asked for. Coverage, not the data's extent, decides what to fetch: a range the
source had no data for is not asked again, and a hole in the middle of the data is
filled if it was never asked for. The most recent ``settle`` hours are never marked
covered, because operators publish late and revise, so they are fetched again next time.

Example:
    >>> t = pd.Timestamp("2024-01-01", tz="UTC")
    >>> h = pd.Timedelta(hours=1)
    >>> subtract([(t, t + 10 * h)], [(t + 2 * h, t + 5 * h)]) == [(t, t + 2 * h), (t + 5 * h, t + 10 * h)]
    True
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

Interval = tuple[pd.Timestamp, pd.Timestamp]


def merge(intervals: list[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of half-open intervals."""
    out: list[Interval] = []
    for lo, hi in sorted(i for i in intervals if i[0] < i[1]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def subtract(wanted: list[Interval], covered: list[Interval]) -> list[Interval]:
    """Parts of ``wanted`` not in ``covered`` (half-open intervals)."""
    result: list[Interval] = []
    for lo, hi in merge(wanted):
        cursor = lo
        for c_lo, c_hi in merge(covered):
            if c_hi <= cursor or c_lo >= hi:
                continue
            if c_lo > cursor:
                result.append((cursor, c_lo))
            cursor = max(cursor, c_hi)
            if cursor >= hi:
                break
        if cursor < hi:
            result.append((cursor, hi))
    return result


class SeriesStore:
    """Fetched series on disk under ``root`` with their coverage.

    Args:
        root: the store's directory (``settings.collect_dir``).
        settle: the trailing window never marked covered.
        now: "now" for the settle window (tests pin it).
    """

    def __init__(self, root: str | Path, *, settle: pd.Timedelta = pd.Timedelta(hours=48),
                 now: pd.Timestamp | None = None) -> None:
        self.root = Path(root)
        self.settle = settle
        self.now = now or pd.Timestamp.now(tz="UTC")

    def _paths(self, key: str) -> tuple[Path, Path]:
        base = self.root / key
        return base.with_suffix(".parquet"), base.with_suffix(".coverage.json")

    def coverage(self, key: str) -> list[Interval]:
        """The intervals already fetched for ``key``."""
        _, cov = self._paths(key)
        if not cov.exists():
            return []
        raw = json.loads(cov.read_text())
        return [(pd.Timestamp(lo), pd.Timestamp(hi)) for lo, hi in raw["covered"]]

    def missing(self, key: str, start: pd.Timestamp, end: pd.Timestamp) -> list[Interval]:
        """What to fetch for ``[start, end)`` given what is covered."""
        return subtract([(start, end)], self.coverage(key))

    def load(self, key: str) -> pd.DataFrame:
        """Everything stored for ``key`` (UTC index; empty frame if nothing)."""
        data, _ = self._paths(key)
        if not data.exists():
            return pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC", name="timestamp"))
        frame = pd.read_parquet(data)
        frame.index = pd.DatetimeIndex(frame.index).tz_convert("UTC")
        frame.index.name = "timestamp"
        return frame

    def save(self, key: str, frame: pd.DataFrame, fetched: Interval) -> None:
        """Merge ``frame`` (new values win) and mark ``fetched`` covered, up to the settle window."""
        data, cov = self._paths(key)
        data.parent.mkdir(parents=True, exist_ok=True)
        old = self.load(key)
        combined = frame if old.empty else pd.concat([old, frame])
        combined = combined[~combined.index.duplicated(keep="last")].sort_index()
        combined.index.name = "timestamp"
        combined.to_parquet(data)
        lo, hi = fetched
        hi = min(hi, self.now - self.settle)
        covered = merge([*self.coverage(key), (lo, hi)])
        cov.write_text(json.dumps({"covered": [[a.isoformat(), b.isoformat()] for a, b in covered]}, indent=1))

    def slice(self, key: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Stored rows of ``key`` in ``[start, end)``."""
        frame = self.load(key)
        return frame[(frame.index >= start) & (frame.index < end)]
