"""The one typed, frozen settings object of a gridcast process.

Every tunable lives here, once: ports, topics, TTLs, quality bounds, model windows.
Values come from ``GRIDCAST_*`` environment variables (or a ``.env`` file), so the
same code runs embedded (no Kafka, no Redis) and in a full deployment.

Pass the object explicitly (``*, settings``); call :func:`get_settings` only at a
process's edge (CLI entry, service ``__init__``, bridge start-up).

Example:
    >>> s = Settings(country="DE")
    >>> s.country, s.port
    ('DE', 3000)
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All gridcast settings. Environment variable = ``GRIDCAST_`` + field name upper-cased."""

    model_config = SettingsConfigDict(
        env_prefix="GRIDCAST_", env_file=".env", frozen=True, extra="ignore"
    )

    # ---- data -----------------------------------------------------------------
    data_dir: Path = Field(
        Path("data"), description="Where `make run` writes generated and cleaned data."
    )
    country: str = Field(
        "VN", description="ISO country code whose public holidays feed the features; 'ES-CT' style (ISO 3166-2) "
        "for one subdivision's own holidays."
    )
    region_timezone: str = Field(
        "Asia/Ho_Chi_Minh",
        description="Local time zone of the demo region (labels in the UI, holiday dates).",
    )

    # ---- data quality -----------------------------------------------------------
    load_min_mw: float = Field(0.0, description="Physical lower bound for load (MW).")
    load_max_mw: float = Field(1.0e6, description="Physical upper bound for load (MW).")
    temperature_min_c: float = Field(-60.0, description="Lower bound for temperature (°C).")
    temperature_max_c: float = Field(60.0, description="Upper bound for temperature (°C).")
    humidity_min_pct: float = Field(0.0, description="Lower bound for relative humidity (%).")
    humidity_max_pct: float = Field(100.0, description="Upper bound for relative humidity (%).")
    wind_max_ms: float = Field(75.0, description="Upper bound for wind speed (m/s).")
    pressure_min_hpa: float = Field(870.0, description="Lower bound for pressure (hPa).")
    pressure_max_hpa: float = Field(1085.0, description="Upper bound for pressure (hPa).")
    max_interpolate_steps: int = Field(
        3, ge=0, description="Gaps up to this many steps are interpolated; longer stay NaN and flagged."
    )
    flatline_min_steps: int = Field(
        6, ge=2, description="This many identical consecutive load values count as a flatline."
    )
    spike_z: float = Field(
        6.0, gt=0, description="Robust z-score (vs the same hour on neighbouring days) that flags a spike."
    )
    min_history_days: int = Field(
        14, ge=1, description="Fewer clean days than this and `data check` says the data cannot be used."
    )
    max_missing_fraction: float = Field(
        0.2, ge=0, le=1, description="More missing load than this fraction and the data cannot be used."
    )

    # ---- models -------------------------------------------------------------------
    sarimax_window_weeks: int = Field(
        8, ge=2, description="SARIMAX fits on this trailing window (weeks, not years: memory)."
    )
    sarimax_long_window_weeks: int = Field(
        156, ge=0, description="SARIMAX two-stage form: its calendar/weather regression fits on this trailing window "
        "(weeks; 0: the single-stage model)."
    )
    lstm_input_days: int = Field(7, ge=1, description="LSTM look-back window, in days.")
    lstm_horizon_steps: int = Field(
        168, ge=24, description="LSTM direct multi-horizon output length (steps)."
    )
    lstm_epochs: int = Field(30, ge=1, description="LSTM maximum epochs (early stopping applies).")
    lstm_units: int = Field(64, ge=4, description="LSTM layer width (one layer; the dense head scales with it).")
    lstm_stride_steps: int = Field(
        2, ge=1, description="Steps between consecutive LSTM training windows (sampling stride)."
    )
    train_val_days: int = Field(
        28, ge=1, description="`gridcast train`: trailing days held out to validate (day-ahead) before saving."
    )
    seed: int = Field(42, description="Seed for generators, model initialisation and noise.")
    levels: tuple[int, ...] = Field(
        (80, 95), description="Default prediction-interval levels (%)."
    )
    max_horizon: int = Field(168, ge=1, description="Largest horizon (steps) a request may ask for.")

    # ---- service -------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Interface the service binds to.")
    port: int = Field(3000, description="HTTP port of the Bento service.")
    batching: bool = Field(
        True, description="Batching of concurrent requests' model calls on (True) or off (benchmarks: one call each)."
    )
    max_batch_size: int = Field(
        64, ge=1, description="Batching: most model calls merged into one network call."
    )
    max_queue_calls: int = Field(
        256, ge=1, description="Model calls waiting at which a forecast request gets 503 + Retry-After at once."
    )
    blas_threads: int = Field(
        1, ge=1, description="BLAS threads of a serving process (the batcher merges requests; more threads "
        "contend for the cores).",
    )
    max_inflight_requests: int = Field(
        64, ge=1, description="Forecast requests being answered at once; one more gets 503 + Retry-After before "
        "its body is parsed (keeps refusals fast past saturation).",
    )
    max_batch_requests: int = Field(
        64, ge=1, description="Largest list accepted by POST /forecast_batch."
    )
    max_history_points: int = Field(
        24 * 7 * 8, ge=1, description="Largest `history` list accepted in one request."
    )
    cache_ttl_s: int = Field(
        3600, ge=1, description="Upper bound on a cached forecast's life (seconds); capped at the next data point."
    )
    cache_max_mb: int = Field(
        64, ge=1, description="Size bound of the in-process forecast cache (MB of JSON answers); LRU beyond it."
    )
    redis_url: str | None = Field(
        None, description="Redis URL for state + cache; unset = in-process (embedded default)."
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body the service reads (bytes); larger gets 413."
    )
    api_key: str | None = Field(None, description="If set, admin endpoints require this key.")
    cors_origins: tuple[str, ...] = Field((), description="Allowed CORS origins; empty = CORS closed.")
    service_url: str = Field(
        "http://127.0.0.1:3000", description="Where the bridge and the stand-alone UI reach the service."
    )

    # ---- streaming --------------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers.")
    topic_observations: str = Field("gridcast.observations", description="Observations topic.")
    topic_requests: str = Field("gridcast.forecast-requests", description="Forecast-request topic.")
    topic_forecasts: str = Field("gridcast.forecasts", description="Published forecasts topic.")
    topic_dead_letter: str = Field("gridcast.dead-letter", description="Dead-letter topic.")
    topic_partitions: int = Field(3, ge=1, description="Partitions per topic when created.")
    consumer_group: str = Field("gridcast-bridge", description="Bridge consumer group id.")
    forecast_via: str = Field(
        "inprocess",
        description="How the bridge computes forecasts: 'inprocess' (same core), 'http' (the service) or 'naive' (seasonal naive only).",
    )
    stream_horizon: int = Field(24, ge=1, description="Horizon of forecasts the bridge publishes.")
    max_future_s: int = Field(
        2 * 24 * 3600, ge=0, description="Observations further than this in the future are dead-lettered."
    )
    redis_key_prefix: str = Field(
        "gridcast", description="Prefix of every Redis key (state and cache); lets deployments share a Redis."
    )
    state_max_points: int = Field(
        24 * 7 * 10, ge=24, description="Observations kept per region in the state store (older ones are trimmed)."
    )
    redis_timeout_s: float = Field(
        1.0, gt=0, description="Redis connect/read timeout (s); a cache slower than this counts as down."
    )
    redis_retry_s: float = Field(
        2.0, ge=0, description="After a Redis failure the cache is skipped (a miss) for this long before retrying (s)."
    )
    stream_max_records: int = Field(
        5000, ge=1, description="Bridge: most messages taken from Kafka in one batch (getmany)."
    )
    stream_poll_ms: int = Field(200, ge=1, description="Bridge: longest wait for a batch from Kafka (ms).")
    stream_backoff_max_s: float = Field(
        10.0, gt=0, description="Bridge: longest retry delay when Kafka, Redis or the service is down (s)."
    )
    stream_metrics_every_s: float = Field(
        10.0, gt=0, description="Bridge: how often the consumed/processed/dead-lettered/lag line is logged (s)."
    )
    stream_metrics_port: int | None = Field(
        None, description="Bridge: serve Prometheus metrics on this port (unset = log only)."
    )
    stream_step_s: int = Field(
        3600, ge=60, description="Step of the observation stream (s); timestamps off this grid are dead-lettered."
    )
    stream_model: str = Field(
        "best", description="Model alias the bridge forecasts with ('best' = lowest validation MAPE)."
    )
    stream_session_timeout_ms: int = Field(
        10_000, ge=6000, description="Bridge consumer-group session timeout (ms): how soon a dead bridge's partitions move."
    )
    topic_weather: str = Field(
        "gridcast.weather-forecasts",
        description="Weather-forecast vintages topic (key = region); the bridge keeps the latest per region in the state.",
    )
    weather_refresh_s: float = Field(
        2.0, ge=0, description="Service with Redis: a region's latest weather vintage is re-read at most this often (s)."
    )

    # ---- the real-time loop: live scoring, hot swap, drift ------------------------------
    score_keep_days: int = Field(
        30, ge=1, description="Days of data time the forecast ledger keeps forecasts and scored points (the longest live window)."
    )
    score_lead_bands: tuple[int, ...] = Field(
        (6, 24, 48), description="Upper ends (steps) of the lead bands live scores are grouped by; the last band is open."
    )
    served_poll_s: float = Field(
        10.0, ge=0, description="Service: seconds between checks of the served pointer for a newly promoted model (0 = off)."
    )
    retrain_on_drift: bool = Field(
        False, description="Service: run `gridcast retrain` for a region whose live error has drifted (see drift_*)."
    )
    drift_ratio: float = Field(
        1.5, gt=1, description="Drift: live 24 h MAPE above this multiple of the model's validation MAPE."
    )
    drift_duration_s: int = Field(
        6 * 3600, ge=0, description="Drift: how long (s, wall clock) the live error must stay above the bound before a retrain."
    )
    drift_min_points: int = Field(
        24, ge=1, description="Drift: fewest scored points in the 24 h window before drift is judged."
    )

    # ---- collect (real data: Open-Meteo, ENTSO-E, EIA) ----------------------------
    collect_dir: Path = Field(
        Path("data/collect"),
        description="Incremental store of fetched raw series (what is already fetched is not fetched again).",
    )
    entsoe_api_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("GRIDCAST_ENTSOE_API_TOKEN", "ENTSOE_API_TOKEN"),
        description="ENTSO-E Transparency Platform security token (env ENTSOE_API_TOKEN or GRIDCAST_ENTSOE_API_TOKEN).",
    )
    eia_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("GRIDCAST_EIA_API_KEY", "EIA_API_KEY"),
        description="U.S. EIA open-data API key (env EIA_API_KEY or GRIDCAST_EIA_API_KEY).",
    )
    entsoe_url: str = Field("https://web-api.tp.entsoe.eu/api", description="ENTSO-E RESTful API endpoint.")
    eia_url: str = Field(
        "https://api.eia.gov/v2/electricity/rto/region-data/data/",
        description="EIA API v2 hourly grid monitor (EIA-930) region-data endpoint.",
    )
    openmeteo_archive_url: str = Field(
        "https://archive-api.open-meteo.com/v1/archive", description="Open-Meteo historical weather endpoint."
    )
    openmeteo_forecast_url: str = Field(
        "https://api.open-meteo.com/v1/forecast", description="Open-Meteo weather forecast endpoint."
    )
    openmeteo_archive_lag_days: int = Field(
        5, ge=0, description="Days the archive lags real time; more recent weather comes from the forecast API."
    )
    collect_timeout_s: float = Field(30.0, gt=0, description="Timeout of one HTTP request to a data source (s).")
    collect_max_retries: int = Field(
        4, ge=0, description="Retries after a 429/5xx/network error before the collector gives up."
    )
    collect_backoff_s: float = Field(
        1.0, ge=0, description="First retry delay (s); doubles per attempt, with full jitter, unless Retry-After says more."
    )
    collect_backoff_max_s: float = Field(60.0, ge=0, description="Cap on one retry delay (s).")
    collect_rate_per_s: float = Field(
        2.0, gt=0, description="Request rate limit per source (requests/s); ENTSO-E allows 400/min."
    )
    entsoe_chunk_days: int = Field(
        365, ge=1, le=366, description="Days per ENTSO-E request (the API serves at most one year per call)."
    )
    eia_page_length: int = Field(5000, ge=1, le=5000, description="Rows per EIA API page (the API maximum is 5000).")
    collect_settle_hours: int = Field(
        48,
        ge=0,
        description="Data this recent is never marked complete: operators publish late and revise, so it is fetched again.",
    )
    collect_watch_every_s: int = Field(
        900, ge=10, description="Default polling interval of `gridcast collect watch` (s)."
    )
    forecast_weather_path: Path = Field(
        Path("data/forecast_weather.parquet"),
        description="Where `gridcast collect weather-forecast/watch` write the weather forecast (future covariates).",
    )

    # ---- ui ----------------------------------------------------------------------------
    ui_refresh_s: float = Field(
        30.0, gt=0, description="UI Live tab: seconds between refreshes of actuals and the latest forecast."
    )
    ui_port: int = Field(7860, description="Port of the stand-alone UI (`gridcast ui`); mounted, it lives at /ui.")
    ui_mount: bool = Field(
        True,
        description="Mount the Gradio UI on the service at /ui, built once the service is up (False: API only, "
        "no Gradio import).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()


def limit_blas_threads(settings: Settings) -> None:
    """Give this serving process ``settings.blas_threads`` BLAS threads (threadpoolctl, at run time).

    A multi-threaded BLAS on a shared or quota-limited machine (a container sees every
    host core) spins for cores it does not get: the LSTM's batch matmul took 6.4-7.8 ms
    of CPU with OpenBLAS's default threads on this 2-core machine under load, 0.6-0.7 ms
    with one. The batcher already merges requests; one thread per process is enough.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=settings.blas_threads, user_api="blas")
