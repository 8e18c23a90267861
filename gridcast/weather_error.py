"""The forecast-like weather error: how far a temperature forecast strays from what is then observed.

One spread for the whole project, rising linearly with lead from
:data:`NOISE_SIGMA_FIRST_C` at a lead of 1 h to :data:`NOISE_SIGMA_LAST_C` at
:data:`NOISE_LAST_LEAD_H` (``sigma(h) = 0.5 + 1.5·(h − 1)/35`` °C, the same line beyond
36 h; 0.5 °C under an hour) — the setting the peer models were benchmarked with. Two
users, one implementation:

* the backtests' ``noisy`` weather (``training.backtest``) adds a seeded error of this
  spread to the observed temperature of the targets;
* the two-stage SARIMAX (:mod:`gridcast.models.sarimax`) calibrates its intervals on
  held-out days whose temperatures carry such an error, so the intervals hold a weather
  forecast's error and not only the load's ("train on noisy weather so models don't
  over-trust a forecast", issue 16).

Example:
    >>> noise_sigma(np.array([0.5, 1.0, 18.5, 36.0])).tolist()
    [0.5, 0.5, 1.25, 2.0]
"""

from __future__ import annotations

import numpy as np

#: spread (°C) of the error at a lead of one hour (and under)
NOISE_SIGMA_FIRST_C = 0.5
#: spread (°C) at :data:`NOISE_LAST_LEAD_H`; the line goes on beyond it
NOISE_SIGMA_LAST_C = 2.0
NOISE_LAST_LEAD_H = 36.0


def noise_sigma(lead_h: np.ndarray) -> np.ndarray:
    """Spread (°C) of a temperature forecast's error at a lead of ``lead_h`` hours."""
    slope = (NOISE_SIGMA_LAST_C - NOISE_SIGMA_FIRST_C) / (NOISE_LAST_LEAD_H - 1.0)
    return NOISE_SIGMA_FIRST_C + slope * (np.maximum(np.asarray(lead_h, dtype=float), 1.0) - 1.0)
