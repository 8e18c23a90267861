"""Array helpers shared by the quality checks: runs, shifted stacks, same-step references.

Pure numpy on one region's regular grid; no report, no settings.
"""

from __future__ import annotations

import numpy as np


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and lengths of the True runs of a boolean array.

    Example:
        >>> _runs(np.array([0, 1, 1, 0, 1], dtype=bool))
        (array([1, 4]), array([2, 1]))
    """
    m = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
    d = np.diff(m.astype(np.int8))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return starts, ends - starts


def _shifted_stack(x: np.ndarray, shifts: list[int]) -> np.ndarray:
    """Rows ``x[t + s]`` for each shift (NaN outside the array)."""
    n = len(x)
    out = np.full((len(shifts), n), np.nan)
    for i, s in enumerate(shifts):
        if abs(s) >= n:
            continue
        if s >= 0:
            out[i, : n - s] = x[s:]
        else:
            out[i, -s:] = x[: n + s]
    return out


def _nanmedian_rows(stack: np.ndarray) -> np.ndarray:
    """Column-wise median ignoring NaN, without the all-NaN RuntimeWarning."""
    filled = np.sort(np.where(np.isnan(stack), np.inf, stack), axis=0)
    n = (~np.isnan(stack)).sum(axis=0)
    out = np.full(stack.shape[1], np.nan)
    ok = n > 0
    cols = np.flatnonzero(ok)
    lo = filled[(n[ok] - 1) // 2, cols]
    hi = filled[n[ok] // 2, cols]
    out[ok] = (lo + hi) / 2
    return out


def _same_step_reference(x: np.ndarray, spd: int, days: int) -> np.ndarray:
    """Median of the same step of day on ``days`` neighbouring days each side."""
    shifts = [j * spd for j in range(1, days + 1)] + [-j * spd for j in range(1, days + 1)]
    return _nanmedian_rows(_shifted_stack(x, shifts))



def _fill(x: np.ndarray) -> np.ndarray:
    """``x`` with NaN filled by linear interpolation (ends held flat)."""
    good = np.isfinite(x)
    if good.all() or not good.any():
        return x
    out = x.copy()
    out[~good] = np.interp(np.flatnonzero(~good), np.flatnonzero(good), x[good])
    return out

