"""Model drift: a model's live error staying above a multiple of its validation error."""

from __future__ import annotations


class DriftMonitor:
    """When has a model's live error stayed above ``ratio`` × its validation error for ``duration_s``?

    :meth:`observe` is called with each refresh of the live scores; it returns True once
    per drift episode, when the episode has lasted ``duration_s`` (wall clock). A
    refresh below the bound (or with fewer than ``min_points`` scored) ends the episode.

    Example:
        >>> d = DriftMonitor(ratio=1.5, duration_s=60, min_points=1)
        >>> [d.observe("r", "lstm", live_mape=m, n=5, validation_mape=2.0, now=t)
        ...  for t, m in [(0, 4.0), (30, 4.0), (61, 4.0), (90, 4.0), (100, 2.0), (200, 4.0)]]
        [False, False, True, False, False, False]
    """

    def __init__(self, *, ratio: float, duration_s: float, min_points: int) -> None:
        self.ratio = ratio
        self.duration_s = duration_s
        self.min_points = min_points
        self._since: dict[tuple[str, str], float] = {}
        self._fired: set[tuple[str, str]] = set()

    def observe(self, region: str, model: str, *, live_mape: float | None, n: int, validation_mape: float,
                now: float) -> bool:
        key = (region, model)
        drifting = live_mape is not None and n >= self.min_points and live_mape > self.ratio * validation_mape
        if not drifting:
            self._since.pop(key, None)
            self._fired.discard(key)
            return False
        since = self._since.setdefault(key, now)
        if key not in self._fired and now - since >= self.duration_s:
            self._fired.add(key)
            return True
        return False
