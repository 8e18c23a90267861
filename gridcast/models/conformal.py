"""Per-lead interval calibration from a model's own out-of-sample errors (split conformal).

A model's native intervals are right only when its error model is: SARIMAX's
state-space intervals know neither the weather forecast's error nor holiday effects
and covered about 85 % at a nominal 90 % (issue 16). The fix used here is the
simplest conformal one that keeps the model's own lead-dependent shape:

1. collect **normalised scores** ``|y − ŷ| / σ_h`` of forecasts the model made for
   data it had not yet absorbed, for each lead ``h`` (``σ_h`` the model's own
   standard error at that lead);
2. pool the scores of neighbouring leads into bands (a band of a few hours holds
   enough samples for a 95 % quantile, and coverage does not change abruptly from
   one hour to the next);
3. at forecast time the bound of a central ``L`` % interval is ``ŷ ± q_band(L) · σ_h``
   with ``q_band(L)`` the band's conformal quantile of the scores.

The quantiles are kept on a grid of levels (:data:`GRID`) so any requested level
can be answered by interpolation, and stored as plain arrays (exact through
save/load).

Example:
    >>> import numpy as np
    >>> scores = np.abs(np.random.default_rng(0).standard_normal((4, 2000)))
    >>> cal = LeadQuantiles.from_scores(scores, band=2)
    >>> q = cal.quantile(90, horizon=6)
    >>> q.shape, bool(np.all(np.abs(q - 1.645) < 0.15))
    ((6,), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the levels (percent) at which the quantiles are stored; others are interpolated
GRID = np.concatenate([np.arange(1.0, 99.0, 1.0), [99.0, 99.5]])


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The split-conformal quantile of ``scores`` for a ``level`` % interval.

    The ``⌈(n+1)·level/100⌉``-th smallest score (the finite-sample correction), the
    largest one when that rank is past ``n``; NaN without scores.
    """
    s = np.sort(np.asarray(scores, dtype=float)[np.isfinite(scores)])
    n = len(s)
    if n == 0:
        return float("nan")
    rank = int(np.ceil((n + 1) * level / 100.0))
    return float(s[min(max(rank, 1), n) - 1])


@dataclass(frozen=True, eq=False)
class LeadQuantiles:
    """Per lead band, the conformal quantiles of the normalised scores on :data:`GRID`.

    Attributes:
        band: leads per band (lead ``h``, counted from 0, is in band ``h // band``;
            leads past the last band use the last one).
        table: ``(n_bands, len(GRID))`` quantiles.
        counts: scores per band (for the record).
    """

    band: int
    table: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_scores(cls, scores: np.ndarray, *, band: int) -> LeadQuantiles:
        """From ``(n_leads, n_samples)`` normalised absolute scores (NaN = none).

        Raises:
            ValueError: no finite score at all, or ``band`` < 1.
        """
        if band < 1:
            raise ValueError(f"band must be >= 1, got {band}")
        scores = np.asarray(scores, dtype=float)
        if not np.isfinite(scores).any():
            raise ValueError("interval calibration needs at least one finite score")
        n_bands = -(-scores.shape[0] // band)
        table = np.full((n_bands, len(GRID)), np.nan)
        counts = np.zeros(n_bands, dtype=np.int64)
        for b in range(n_bands):
            pooled = scores[b * band:(b + 1) * band].ravel()
            pooled = pooled[np.isfinite(pooled)]
            counts[b] = len(pooled)
            if len(pooled):
                table[b] = [conformal_quantile(pooled, lv) for lv in GRID]
        # a band without scores borrows from the nearest earlier one (else the next)
        for b in range(n_bands):
            if counts[b] == 0:
                donors = [i for i in range(n_bands) if counts[i]]
                table[b] = table[min(donors, key=lambda i: (abs(i - b), -i))]
        return cls(band=int(band), table=table, counts=counts)

    def quantile(self, level: float, horizon: int) -> np.ndarray:
        """``q(level)`` for leads ``0 .. horizon-1`` (interpolated on the grid)."""
        per_band = np.array([np.interp(level, GRID, row) for row in self.table])
        bands = np.minimum(np.arange(horizon) // self.band, len(per_band) - 1)
        return per_band[bands]

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}band": np.array(self.band), f"{prefix}table": self.table, f"{prefix}counts": self.counts}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> LeadQuantiles | None:
        """Inverse of :meth:`to_arrays`; None when the arrays are absent."""
        if f"{prefix}table" not in arrays:
            return None
        return cls(band=int(arrays[f"{prefix}band"]), table=np.asarray(arrays[f"{prefix}table"]),
                   counts=np.asarray(arrays[f"{prefix}counts"]))

    def summary(self, level: float = 90.0) -> dict[str, object]:
        """A JSON-able record: the band width, the scores per band and ``q(level)`` per band."""
        return {"band": self.band, "counts": self.counts.tolist(),
                f"q{level:g}": [float(np.interp(level, GRID, row)) for row in self.table]}
