"""The HTTP contract of the Bento service, as pydantic models.

These types are what BentoML turns into the generated OpenAPI document, so every
field carries a description. Static bounds live here (types, finite numbers, the
largest horizon any deployment could allow); bounds that depend on settings
(``max_horizon``, ``max_history_points``, ``max_batch_requests``) are checked by
:mod:`service.core`, which raises :class:`~gridcast.errors.UserInputError` with the
offending ``field``.

The model-call types (:class:`ModelCall`, :class:`ModelAnswer`) travel between the
API process and the model process behind the batchable endpoint; frames ride in a
columnar form (:class:`Columns`) so the batch stays typed and cheap to serialise.

Example:
    >>> q = ForecastQuery(region="region-1", model="lstm", horizon=24)
    >>> q.level, q.history is None
    ([80, 95], True)
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, FiniteFloat

#: what a client may ask for; "best" = the lowest validation MAPE for the region
ModelName = Literal["lstm", "sarimax", "naive", "ensemble", "best"]

#: hard ceiling for the static schema; the settings' max_horizon may be lower
HORIZON_CEILING = 24 * 7 * 4


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Observation(_Strict):
    """One observed interval of a region (the canonical table's columns, minus region)."""

    timestamp: AwareDatetime = Field(description="Start of the interval, with a UTC offset.")
    load_mw: FiniteFloat = Field(description="Observed load (MW).")
    temperature_c: FiniteFloat | None = Field(None, description="Air temperature (°C).")
    humidity_pct: FiniteFloat | None = Field(None, description="Relative humidity (%).")
    wind_speed_ms: FiniteFloat | None = Field(None, description="Wind speed (m/s).")
    cloud_cover_pct: FiniteFloat | None = Field(None, description="Cloud cover (%).")
    shortwave_wm2: FiniteFloat | None = Field(None, description="Shortwave radiation (W/m²).")
    pressure_hpa: FiniteFloat | None = Field(None, description="Surface pressure (hPa).")


class WeatherPoint(_Strict):
    """A known (forecast) weather value for a future interval."""

    timestamp: AwareDatetime = Field(description="Start of the future interval, with a UTC offset.")
    temperature_c: FiniteFloat | None = Field(None, description="Forecast air temperature (°C).")
    humidity_pct: FiniteFloat | None = Field(None, description="Forecast relative humidity (%).")
    wind_speed_ms: FiniteFloat | None = Field(None, description="Forecast wind speed (m/s).")
    cloud_cover_pct: FiniteFloat | None = Field(None, description="Forecast cloud cover (%).")
    shortwave_wm2: FiniteFloat | None = Field(None, description="Forecast shortwave radiation (W/m²).")
    pressure_hpa: FiniteFloat | None = Field(None, description="Forecast surface pressure (hPa).")


class ForecastQuery(_Strict):
    """One forecast request (the body of ``POST /forecast``)."""

    region: str = Field(min_length=1, max_length=100, description="A region with served models.")
    model: ModelName = Field("best", description="Model alias, or 'best' (lowest validation MAPE).")
    horizon: int = Field(ge=1, le=HORIZON_CEILING, description="Steps ahead (1..settings.max_horizon).")
    level: list[int] = Field(
        default_factory=lambda: [80, 95], min_length=1, max_length=4,
        description="Prediction-interval levels in percent, each in 1..99.",
    )
    history: list[Observation] | None = Field(
        None, description="Recent observations, increasing and on the model's grid; "
        "omitted = the service's state store.",
    )
    weather: list[WeatherPoint] | None = Field(
        None, description="Known future weather for the forecast steps (optional)."
    )


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

    region: str
    model: str = Field(description="The alias that actually answered (after 'best' and fallback).")
    requested_model: str = Field(description="The alias the client asked for.")
    model_version: str = Field(description="BentoML tag of the model that answered.")
    issued_at: datetime = Field(description="When this forecast was computed (UTC).")
    origin: datetime = Field(description="Last observed timestamp the forecast starts after.")
    level: list[int]
    points: list[ForecastPoint]
    cached: bool = Field(description="True when served from the forecast cache.")
    fallback: bool = Field(description="True when seasonal naive answered instead of the model.")
    fallback_reason: str | None = Field(None, description="Why the fallback answered.")
    history_source: Literal["request", "state", "model"] = Field(
        description="Where the history came from: the request, the state store, or the model's own tail."
    )
    degraded: list[str] = Field(
        default_factory=list, description="Parts that were unavailable but did not stop the answer (e.g. 'cache')."
    )


class BatchQuery(_Strict):
    requests: list[ForecastQuery] = Field(min_length=1, description="Forecast requests (bounded).")


class BatchResult(BaseModel):
    results: list[ForecastResult]


class RecentQuery(_Strict):
    region: str = Field(min_length=1, max_length=100)
    n: int = Field(168, ge=1, le=24 * 7 * 8, description="How many recent observations.")


class RecentResult(BaseModel):
    region: str
    observations: list[dict] = Field(description="Recent actuals from the state store, oldest first.")
    forecast: dict | None = Field(None, description="The latest forecast the bridge published, if any.")


class ErrorBody(BaseModel):
    """Every 4xx/5xx body: a code, a human sentence, and the offending field if any."""

    error: str
    detail: str
    field: str | None = None


# ---- between the API process and the model process --------------------------------


class Columns(BaseModel):
    """A frame in columnar form: ISO timestamps + named float columns (None = missing)."""

    index: list[str]
    columns: dict[str, list[float | None]]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Columns:
        idx = pd.DatetimeIndex(frame.index).tz_convert("UTC")
        cols = {}
        for name in frame.columns:
            values = frame[name].astype(float)
            cols[str(name)] = [None if pd.isna(v) else float(v) for v in values]
        return cls(index=[t.isoformat() for t in idx], columns=cols)

    def to_frame(self) -> pd.DataFrame:
        idx = pd.DatetimeIndex(pd.to_datetime(self.index, utc=True), name="timestamp")
        return pd.DataFrame(
            {k: pd.array(v, dtype="float64") for k, v in self.columns.items()}, index=idx
        ).astype("float64")


class ModelCall(BaseModel):
    """One model computation inside an adaptive batch; ``id`` maps the answer back."""

    id: str
    region: str
    alias: str
    horizon: int
    level: list[int]
    history: Columns | None = None
    covariates: Columns | None = None


class ModelAnswer(BaseModel):
    id: str
    frame: Columns | None = None
    alias: str | None = Field(None, description="The alias that answered (naive after a fallback).")
    version: str | None = Field(None, description="Tag of the model that answered.")
    fallback_reason: str | None = Field(None, description="Why the seasonal naive answered instead.")
    error: str | None = Field(None, description="Error code when the model could not answer.")
    detail: str | None = None
