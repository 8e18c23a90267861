"""The wire format of forecast requests and answers, validated once, at the edge.

Pydantic models for what clients send over HTTP (``POST /forecast``) and Kafka
(``gridcast.forecast-requests``), and what they get back. The bounds a deployment
enforces (largest horizon, history length, batch size) come from the process
settings, so the OpenAPI document states exactly what is accepted.

Two payload forms for ``history`` and ``weather``, giving identical forecasts:

* object per point: ``[{"timestamp": "...", "load_mw": 1.0, "temperature_c": 3.0}, ...]``
* columnar: ``{"start": "...", "step": "1h", "load_mw": [...], "temperature_c": [...]}``
  (arrays validate as arrays: the cheaper form for long histories).

:meth:`ForecastQuery.to_query` turns a validated request into the core's
:class:`gridcast.forecast.Query`; after that only arrays travel.

Example:
    >>> q = ForecastQuery(region="region-1", model="lstm", horizon=24)
    >>> q.level, q.to_query().history is None
    ([80, 95], True)
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Literal

from typing_extensions import NotRequired, TypedDict

import numpy as np
import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, FiniteFloat, field_validator

from gridcast.errors import UserInputError
from gridcast.forecast import Query
from gridcast.series import Points, points_from_rows
from gridcast.schema import LOAD, WEATHER
from gridcast.series import Series
from gridcast.settings import get_settings

_S = get_settings()
MAX_HORIZON = _S.max_horizon
MAX_HISTORY = _S.max_history_points
MAX_WEATHER = _S.max_horizon + 24 * 7 * 4
MAX_BATCH = _S.max_batch_requests

#: what a client may ask for; "best" = the lowest validation MAPE for the region
ModelName = Literal["lstm", "sarimax", "naive", "ensemble", "best"]
Level = Annotated[int, Field(ge=1, le=99)]
Region = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$",
                              description="A region with served models.")]
Step = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,3}(s|min|h)$",
                            description="Step of the rows: '1h', '30min', '15min'.")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Points are TypedDicts, not models: a history of a few hundred points validates about
# three times faster (no instance per point), and stays plain dicts for the conversion.
class Observation(TypedDict):
    """One observed interval of a region (the canonical table's columns, minus region)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    timestamp: Annotated[AwareDatetime, Field(description="Start of the interval, with a UTC offset.")]
    load_mw: Annotated[FiniteFloat, Field(description="Observed load (MW).")]
    temperature_c: NotRequired[Annotated[FiniteFloat | None, Field(description="Air temperature (°C).")]]
    humidity_pct: NotRequired[Annotated[FiniteFloat | None, Field(description="Relative humidity (%).")]]
    wind_speed_ms: NotRequired[Annotated[FiniteFloat | None, Field(description="Wind speed (m/s).")]]
    cloud_cover_pct: NotRequired[Annotated[FiniteFloat | None, Field(description="Cloud cover (%).")]]
    shortwave_wm2: NotRequired[Annotated[FiniteFloat | None, Field(description="Shortwave radiation (W/m²).")]]
    pressure_hpa: NotRequired[Annotated[FiniteFloat | None, Field(description="Surface pressure (hPa).")]]


class WeatherPoint(TypedDict):
    """A known (forecast) weather value for a future interval."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    timestamp: Annotated[AwareDatetime, Field(description="Start of the future interval, with a UTC offset.")]
    temperature_c: NotRequired[Annotated[FiniteFloat | None, Field(description="Forecast air temperature (°C).")]]
    humidity_pct: NotRequired[Annotated[FiniteFloat | None, Field(description="Forecast relative humidity (%).")]]
    wind_speed_ms: NotRequired[Annotated[FiniteFloat | None, Field(description="Forecast wind speed (m/s).")]]
    cloud_cover_pct: NotRequired[Annotated[FiniteFloat | None, Field(description="Forecast cloud cover (%).")]]
    shortwave_wm2: NotRequired[Annotated[FiniteFloat | None,
                                         Field(description="Forecast shortwave radiation (W/m²).")]]
    pressure_hpa: NotRequired[Annotated[FiniteFloat | None, Field(description="Forecast surface pressure (hPa).")]]


def _weather_column(n: int, what: str):
    return Field(None, max_length=n, description=f"{what}, one value per step (null = missing).")


class _Columnar(_Strict):
    start: AwareDatetime = Field(description="Timestamp of the first row, with a UTC offset.")
    step: Step = "1h"
    temperature_c: list[FiniteFloat | None] | None = _weather_column(MAX_WEATHER, "Air temperature (°C)")
    humidity_pct: list[FiniteFloat | None] | None = _weather_column(MAX_WEATHER, "Relative humidity (%)")
    wind_speed_ms: list[FiniteFloat | None] | None = _weather_column(MAX_WEATHER, "Wind speed (m/s)")
    cloud_cover_pct: list[FiniteFloat | None] | None = _weather_column(MAX_WEATHER, "Cloud cover (%)")
    shortwave_wm2: list[FiniteFloat | None] | None = _weather_column(MAX_WEATHER, "Shortwave radiation (W/m²)")
    pressure_hpa: list[FiniteFloat | None] | None = _weather_column(MAX_WEATHER, "Surface pressure (hPa)")

    def _columns(self, names: tuple[str, ...]) -> dict[str, list]:
        fields = self.__dict__
        return {c: fields[c] for c in names if fields.get(c) is not None}

    def to_series(self, name: str) -> Series:
        """The arrays as a series; columns of unequal length are a 422 (JSON Schema cannot state it)."""
        given = self._columns((LOAD, *WEATHER))
        lengths = {k: len(v) for k, v in given.items()}
        if len(set(lengths.values())) > 1:
            raise UserInputError(f"{name} columns must have equal lengths, got {lengths}", field=name)
        columns = {k: np.array(vals, dtype=float) for k, vals in given.items()}  # None (missing) becomes NaN
        return Series(int(self.start.timestamp()), _step_seconds(self.step), columns)


@lru_cache(maxsize=64)
def _step_seconds(step: str) -> int:
    """``"1h"`` → 3600 (a request's step, parsed once per distinct spelling)."""
    return int(pd.Timedelta(step).total_seconds())


class ColumnarHistory(_Columnar):
    """Recent observations as arrays from ``start`` every ``step``."""

    load_mw: list[FiniteFloat] = Field(min_length=1, max_length=MAX_HISTORY, description="Observed load (MW).")


class ColumnarWeather(_Columnar):
    """Known future weather as arrays from ``start`` every ``step``."""


class ForecastQuery(_Strict):
    """One forecast request (the body of ``POST /forecast``)."""

    region: Region
    model: ModelName = Field("best", description="Model alias, or 'best' (lowest validation MAPE).")
    horizon: int = Field(ge=1, le=MAX_HORIZON, description="Steps ahead.")
    level: list[Level] = Field(
        default_factory=lambda: [80, 95], min_length=1, max_length=4,
        description="Prediction-interval levels in percent, each in 1..99, no repeats.",
        json_schema_extra={"uniqueItems": True},
    )
    history: Annotated[list[Observation], Field(min_length=1, max_length=MAX_HISTORY)] | ColumnarHistory | None = Field(
        None, description="Recent observations, increasing and on the model's grid, as a list of points or "
        "as arrays; omitted = the service's state store.",
    )
    weather: Annotated[list[WeatherPoint], Field(min_length=1, max_length=MAX_WEATHER)] | ColumnarWeather | None = Field(
        None, description="Known future weather for the forecast steps (optional), points or arrays.",
    )

    @field_validator("level")
    @classmethod
    def _levels_unique(cls, level: list[int]) -> list[int]:
        if len(set(level)) != len(level):
            raise ValueError(f"interval levels repeat: {level}")
        return level

    def to_query(self) -> Query:
        return Query(region=self.region, horizon=self.horizon, model=self.model, level=tuple(self.level),
                     history=_payload(self.history, (LOAD, *WEATHER), "history"),
                     weather=_payload(self.weather, WEATHER, "weather"))


def _payload(value, columns: tuple[str, ...], name: str) -> Series | Points | None:
    if value is None:
        return None
    if isinstance(value, _Columnar):  # columnar weather without a column: no weather
        return value.to_series(name) if value._columns(columns) else None
    return points_from_rows(value, columns)


class ObservationsPost(_Strict):
    """The body of ``POST /admin/observations``: actuals for the state store."""

    region: Region
    observations: Annotated[list[Observation], Field(min_length=1, max_length=MAX_HISTORY)] | ColumnarHistory = Field(
        description="Observations, increasing and on the model's grid, as a list of points or as arrays.")

    def to_query(self) -> Query:
        return Query(region=self.region, horizon=1,
                     history=_payload(self.observations, (LOAD, *WEATHER), "observations"))


class Interval(BaseModel):
    lower: float = Field(description="Lower bound of the interval.")
    upper: float = Field(description="Upper bound of the interval.")


class ForecastPoint(BaseModel):
    timestamp: datetime = Field(description="Start of the forecast interval (UTC).")
    mean: float = Field(description="Point forecast (MW).")
    lower: float = Field(description="Lower bound of the widest requested interval.")
    upper: float = Field(description="Upper bound of the widest requested interval.")
    intervals: dict[str, Interval] = Field(description="Bounds per requested level ('80', '95').")


class ForecastResult(BaseModel):
    """The answer to one :class:`ForecastQuery`."""

    cached: bool = Field(description="True when served from the forecast cache.")
    degraded: list[str] = Field(
        default_factory=list, description="Parts that were unavailable but did not stop the answer (e.g. 'cache')."
    )
    weather_issued_at: datetime | None = Field(
        None, description="Issue time of the weather-forecast vintage used as future covariates (None: no vintage)."
    )
    region: str
    model: str = Field(description="The alias that actually answered (after 'best' and fallback).")
    requested_model: str = Field(description="The alias the client asked for.")
    model_version: str = Field(description="BentoML tag of the model that answered.")
    issued_at: datetime = Field(description="When this forecast was computed (UTC).")
    origin: datetime = Field(description="Last observed timestamp the forecast starts after.")
    level: list[int]
    points: list[ForecastPoint]
    fallback: bool = Field(description="True when a fallback (seasonal naive) answered instead of the model.")
    fallback_reason: str | None = Field(None, description="Why the fallback answered.")
    history_source: Literal["request", "state", "model"] = Field(
        description="Where the history came from: the request, the state store, or the model's own tail."
    )


class BatchQuery(_Strict):
    requests: list[ForecastQuery] = Field(min_length=1, max_length=MAX_BATCH, description="Forecast requests.")


class BatchResult(BaseModel):
    results: list[ForecastResult]


class RecentQuery(_Strict):
    region: Region
    n: int = Field(168, ge=1, le=24 * 7 * 8, description="How many recent observations.")


class RecentResult(BaseModel):
    region: str
    observations: list[dict] = Field(description="Recent actuals from the state store, oldest first.")
    forecast: dict | None = Field(None, description="The latest forecast the bridge published, if any.")


class ErrorBody(BaseModel):
    """Every 4xx/5xx body: a code, a human sentence, and the offending field if any."""

    error: str = Field(description="Machine-readable code.")
    detail: str = Field(description="What went wrong, for a person.")
    field: str | None = Field(None, description="The request field at fault, if any.")
