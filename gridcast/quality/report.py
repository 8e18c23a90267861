"""The quality report's bookkeeping: check names, counts, examples, actions.

Every check in :mod:`gridcast.quality.checks` writes what it found into one
:class:`_Checks`, so the JSON report and the summary table have the same shape
whatever ran: ``{name: {"count", "examples", "action", ...details}}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: the report's checks, in the order they run (and are shown)
CHECKS = (
    "schema",
    "timezone",
    "duplicates_exact",
    "clock_change",
    "duplicates_conflicting",
    "gaps",
    "temperature_unit",
    "bounds",
    "spikes",
    "flatlines",
    "date_transposition",
    "date_shift",
    "date_swap",
    "day_type",
)
#: how many examples a check keeps in the report
N_EXAMPLES = 5


class _Checks:
    """Accumulates per-check counts, examples and actions across regions."""

    def __init__(self) -> None:
        self.checks: dict[str, dict[str, Any]] = {
            name: {"count": 0, "examples": [], "action": "none"} for name in CHECKS
        }

    def add(self, name: str, count: int, examples: Sequence[dict[str, Any]] = (), action: str | None = None,
            **details: Any) -> None:
        entry = self.checks[name]
        entry["count"] += int(count)
        room = N_EXAMPLES - len(entry["examples"])
        if room > 0:
            entry["examples"].extend(list(examples)[:room])
        if action is not None and count:
            entry["action"] = action
        for key, value in details.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key in entry:
                entry[key] = max(entry[key], value) if key.startswith("longest") else entry[key] + value
            elif isinstance(value, list) and key in entry:
                entry[key].extend(value)
            else:
                entry[key] = value

    def set_action(self, name: str, action: str) -> None:
        self.checks[name]["action"] = action


def _iso(ts: Any) -> str:
    return pd.Timestamp(ts).isoformat()


def _num(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 3)
