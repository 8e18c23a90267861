"""Plausibility guard: a forecast far outside anything the region has drawn never leaves gridcast.

Every forecast (each ensemble member's, the backtest's, the service's and the
bridge's) is checked by :func:`implausible` against the region's
:class:`PlausibleBand`. A failing forecast is answered by the next model of the
fallback chain (ensemble → its best plausible member → seasonal naive), flagged and
counted by the caller.

**The band rule.** With ``lo_obs``/``hi_obs`` the smallest and largest observed load
and ``range = hi_obs − lo_obs``::

    lo = lo_obs − factor·range        (clipped at 0 when no observed load was negative)
    hi = hi_obs + factor·range

with ``factor = 1`` by default. Why this shape:

* It scales with the region's own swing, not with its level: a grid whose load moves
  between 18 and 41 GW (Spain) gets [0, 64] GW, one between 3 and 9 GW (Victoria)
  [0, 15] GW. A multiple of the level alone would be far too loose for a flat grid and
  too tight for a peaky one.
* It is meant to catch failures, not errors: a real forecast sits within the observed
  range give or take a few percent, and a grid grows by a few percent a year, so
  one range of head-room above the record peak (Spain: +56 %) never touches a real
  forecast, while the blow-ups it is for (±3·10¹¹ MW, NaN, inf, a sign flip to a
  negative load of a grid that never drew one) are caught with room to spare. Errors
  of tens of percent are the scores' business, not the guard's.
* ``lo`` is clipped at 0 because a region that never drew a negative load will not
  start in the next days; a net-load series that did go negative keeps its own
  negative margin.
* A flat history (``range`` 0) gets a range of a tenth of its level, so the band is
  never a point.

The band is recorded at training time in the saved model's metadata under
:data:`METADATA_KEY` (``{"lo": .., "hi": ..}``); a model saved before that has no
band and gets the finiteness check only.

Everything here is plain NumPy: it runs on every served forecast.

Example:
    >>> import numpy as np
    >>> band = PlausibleBand.from_load(np.array([100.0, 300.0, np.nan]))
    >>> band
    PlausibleBand(lo=0.0, hi=500.0)
    >>> implausible(np.array([[150.0, 250.0], [150.0, 3e11], [np.nan, 1.0]]), band).tolist()
    [False, True, True]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: metadata key of the band in a saved model's metadata
METADATA_KEY = "plausible_band"
#: head-room on each side, in multiples of the observed range
DEFAULT_FACTOR = 1.0


@dataclass(frozen=True)
class PlausibleBand:
    """The closed interval ``[lo, hi]`` of loads a forecast of this region may hold."""

    lo: float
    hi: float

    @classmethod
    def from_load(cls, load: np.ndarray, *, factor: float = DEFAULT_FACTOR) -> PlausibleBand:
        """The band of a region from its observed load (NaNs ignored; see the module docstring).

        Raises:
            ValueError: no finite load at all, or a negative ``factor``.
        """
        if factor < 0:
            raise ValueError(f"factor must be >= 0, got {factor}")
        values = np.asarray(load, dtype=float).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError("a plausible band needs at least one finite load value")
        lo_obs, hi_obs = float(values.min()), float(values.max())
        spread = hi_obs - lo_obs
        if spread <= 0:
            spread = 0.1 * max(abs(hi_obs), 1.0)
        lo = lo_obs - factor * spread
        if lo_obs >= 0:
            lo = max(lo, 0.0)
        return cls(lo=lo, hi=hi_obs + factor * spread)

    def to_metadata(self) -> dict[str, float]:
        return {"lo": float(self.lo), "hi": float(self.hi)}

    @classmethod
    def from_metadata(cls, meta: Mapping | None) -> PlausibleBand | None:
        """The band stored by :meth:`to_metadata`, from it or from a model's whole metadata.

        ``meta`` may be the ``{"lo", "hi"}`` mapping itself or a mapping holding it
        under :data:`METADATA_KEY`; None when absent or malformed (older models).
        """
        if not meta:
            return None
        if METADATA_KEY in meta:
            meta = meta[METADATA_KEY]
            if not isinstance(meta, Mapping):
                return None
        try:
            lo, hi = float(meta["lo"]), float(meta["hi"])
        except (KeyError, TypeError, ValueError):
            return None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            return None
        return cls(lo=lo, hi=hi)


def implausible(mean: np.ndarray, band: PlausibleBand | None) -> np.ndarray:
    """Boolean per row of a (n_forecasts, horizon) array (or a 1-D array → shape (1,)).

    True where any value of the row is non-finite (NaN, ±inf) or outside the band
    (``band`` None: only the finiteness check).
    """
    arr = np.asarray(mean, dtype=float)
    if arr.ndim < 2:
        arr = arr.reshape(1, -1)
    elif arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.shape[1] == 0:
        return np.zeros(arr.shape[0], dtype=bool)
    # a row's extremes decide: NaN propagates through min/max, ±inf is an extreme
    lo, hi = arr.min(axis=1), arr.max(axis=1)
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    if band is not None:
        bad |= (lo < band.lo) | (hi > band.hi)
    return bad
