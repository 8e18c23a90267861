"""Which model answers which (region, alias): the served set, as the model store says.

Example:
    >>> cat = ModelCatalog([ServedModel("north", "naive", "gridcast-naive-north:v1", {"validation": {"mape": 5.0}}),
    ...                     ServedModel("north", "lstm", "gridcast-lstm-north:v1", {"validation": {"mape": 2.0}})])
    >>> cat.resolve("north", "best").alias
    'lstm'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from gridcast.errors import ModelNotFoundError
from gridcast.guard import PlausibleBand

#: aliases a client may name explicitly (besides "best")
ALIASES = ("lstm", "sarimax", "naive", "ensemble")
#: the order "best" falls back to when no model recorded a validation MAPE
PREFERENCE = ("ensemble", "lstm", "sarimax", "naive")
#: keys where training records the validation MAPE
MAPE_KEYS = ("mape", "val_mape", "validation_mape")
DEFAULT_FREQ = "1h"


@dataclass(frozen=True)
class ServedModel:
    """The served version of one (region, alias), as the model store describes it."""

    region: str
    alias: str
    tag: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def mape(self) -> float | None:
        """Validation MAPE recorded at training time (None when training did not record one)."""
        for source in (self.metadata.get("validation") or {}, self.metadata, self.metadata.get("metrics") or {}):
            for key in MAPE_KEYS:
                value = source.get(key) if isinstance(source, Mapping) else None
                if isinstance(value, int | float) and math.isfinite(value):
                    return float(value)
        return None

    @property
    def freq(self) -> str:
        return str(self.metadata.get("freq") or DEFAULT_FREQ)

    @cached_property
    def step(self) -> int:
        """The model's step in seconds."""
        return int(pd.Timedelta(self.freq).total_seconds())

    @cached_property
    def band(self) -> PlausibleBand | None:
        """The loads a forecast of this region may hold (recorded at training; None for older models)."""
        return PlausibleBand.from_metadata(self.metadata)

    @cached_property
    def context_end(self) -> int | None:
        """Epoch seconds of the last step the model saw (its own context), if recorded."""
        end = self.metadata.get("context_end") or self.metadata.get("train_end")
        if not end:
            return None
        ts = pd.Timestamp(end)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return int(ts.value // 10**9)


class ModelCatalog:
    """The served models; ``best`` = lowest validation MAPE of the region."""

    def __init__(self, served: Iterable[ServedModel]) -> None:
        self._by_key = {(m.region, m.alias): m for m in served}
        self._regions = sorted({region for region, _ in self._by_key})
        self._best: dict[str, ServedModel] = {}
        for region in self._regions:
            candidates = [m for (r, _), m in self._by_key.items() if r == region]
            scored = [m for m in candidates if m.mape is not None]
            if scored:
                self._best[region] = min(scored, key=lambda m: (m.mape, m.alias))
            else:
                order = {a: i for i, a in enumerate(PREFERENCE)}
                self._best[region] = min(candidates, key=lambda m: order.get(m.alias, 99))

    @classmethod
    def from_store(cls, stored: Iterable[Any]) -> ModelCatalog:
        """From :func:`gridcast.store.served_models` rows (``tag, alias, region, metadata``)."""
        return cls(
            ServedModel(region=s.region, alias=s.alias, tag=str(s.tag), metadata=dict(s.metadata or {}))
            for s in stored
        )

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(sorted(self._by_key.values(), key=lambda m: (m.region, m.alias)))

    def __len__(self) -> int:
        return len(self._by_key)

    def regions(self) -> list[str]:
        return list(self._regions)

    def get(self, region: str, alias: str) -> ServedModel | None:
        return self._by_key.get((region, alias))

    def resolve(self, region: str, alias: str) -> ServedModel:
        """The served model for a request.

        Raises:
            ModelNotFoundError: unknown region (field ``region``) or no such model
                served for it (field ``model``).
        """
        if alias == "best":
            best = self._best.get(region)
            if best is not None:
                return best
        else:
            found = self._by_key.get((region, alias))
            if found is not None:
                return found
        if region not in self._best:
            known = ", ".join(self._regions) or "none"
            raise ModelNotFoundError(f"unknown region {region!r}; served regions: {known}", field="region")
        served = ", ".join(sorted(a for r, a in self._by_key if r == region))
        raise ModelNotFoundError(f"no {alias!r} model is served for region {region!r}; served: {served}",
                                 field="model")
