"""The canonical table every part of gridcast reads and writes.

One row per (region, timestamp). Columns:

==================  =========  ==================================================
column              dtype      meaning
==================  =========  ==================================================
``timestamp``       UTC, tz    start of the interval (hourly or sub-hourly)
``region``          str        region / bidding zone / balancing authority
``load_mw``         float      the target
``temperature_c``   float      air temperature, °C (a mean over stations)
``humidity_pct``    float      optional
``wind_speed_ms``   float      optional
``cloud_cover_pct`` float      optional
``shortwave_wm2``   float      optional
``pressure_hpa``    float      optional
``reference_mw``    float      optional outside forecast (e.g. the operator's)
==================  =========  ==================================================

Stored as Parquet. Table-level facts (frequency, synthetic or real, each column's
source file, injected faults, quality actions) travel in the Parquet schema metadata
under the key ``gridcast`` as JSON, see :func:`write_table` / :func:`read_table`.

Example:
    >>> import pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="30min", tz="UTC")
    >>> infer_freq(pd.Series(idx))
    '30min'
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from gridcast.errors import SchemaError, UserInputError

if TYPE_CHECKING:
    from gridcast.settings import Settings

TIMESTAMP = "timestamp"
REGION = "region"
LOAD = "load_mw"
TEMPERATURE = "temperature_c"
REFERENCE = "reference_mw"
WEATHER_OPTIONAL = (
    "humidity_pct",
    "wind_speed_ms",
    "cloud_cover_pct",
    "shortwave_wm2",
    "pressure_hpa",
)
REQUIRED = (TIMESTAMP, REGION, LOAD, TEMPERATURE)
OPTIONAL = (*WEATHER_OPTIONAL, REFERENCE)
ALL_COLUMNS = (*REQUIRED, *OPTIONAL)
#: weather columns a model may use as known future covariates
WEATHER = (TEMPERATURE, *WEATHER_OPTIONAL)

META_KEY = b"gridcast"

_BOUNDS: dict[int, tuple[Settings, dict[str, tuple[float, float]]]] = {}


def bounds(settings: Settings) -> dict[str, tuple[float, float]]:
    """Physical bounds ``(lo, hi)`` per value column: the one table the quality checks
    (``bounds``) and the streaming bridge's message validation both apply.

    Read from the settings (load, temperature, humidity, wind, pressure); cloud cover and
    shortwave radiation have fixed physical ranges. Cached per settings object: the
    bridge asks for every message.

    Example:
        >>> from gridcast.settings import Settings
        >>> bounds(Settings(_env_file=None))["cloud_cover_pct"]
        (0.0, 100.0)
    """
    cached = _BOUNDS.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    value = {
        LOAD: (settings.load_min_mw, settings.load_max_mw),
        REFERENCE: (settings.load_min_mw, settings.load_max_mw),
        TEMPERATURE: (settings.temperature_min_c, settings.temperature_max_c),
        "humidity_pct": (settings.humidity_min_pct, settings.humidity_max_pct),
        "cloud_cover_pct": (0.0, 100.0),
        "wind_speed_ms": (0.0, settings.wind_max_ms),
        "shortwave_wm2": (0.0, 1500.0),
        "pressure_hpa": (settings.pressure_min_hpa, settings.pressure_max_hpa),
    }
    _BOUNDS[id(settings)] = (settings, value)
    return value


def infer_freq(timestamps: pd.Series | pd.DatetimeIndex) -> str:
    """The table's step as a pandas offset alias ('1h', '30min', ...).

    Uses the most common positive difference, so gaps and duplicates do not fool it.

    Raises:
        SchemaError: fewer than two distinct timestamps.
    """
    ts = pd.DatetimeIndex(pd.Series(timestamps).dropna().unique()).sort_values()
    if len(ts) < 2:
        raise SchemaError("need at least two distinct timestamps to infer the frequency", field=TIMESTAMP)
    diffs = pd.Series(ts[1:] - ts[:-1])
    step = diffs[diffs > pd.Timedelta(0)].mode().iloc[0]
    return to_alias(step)


def to_alias(step: pd.Timedelta) -> str:
    """'1h' for one hour, '30min' for half an hour, '15min', '1D', ..."""
    seconds = int(step.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400}D"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}min"
    return f"{seconds}s"


def steps_per_day(freq: str) -> int:
    """How many steps of ``freq`` make a day (24 for '1h', 48 for '30min')."""
    step = pd.Timedelta(freq)
    n = pd.Timedelta("1D") / step
    if n != int(n):
        raise SchemaError(f"frequency {freq!r} does not divide a day", field=TIMESTAMP)
    return int(n)


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """Check columns and dtypes; return a copy with canonical dtypes and column order.

    Raises:
        SchemaError: a required column is missing (the message lists what exists),
            or a column cannot be converted to its dtype.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise SchemaError(
            f"missing column(s) {', '.join(missing)}; the table has: {', '.join(map(str, df.columns))}",
            field=missing[0],
        )
    out = df.copy()
    ts = out[TIMESTAMP]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise SchemaError("timestamp must be timezone-aware (UTC)", field=TIMESTAMP)
    out[TIMESTAMP] = ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
    out[REGION] = out[REGION].astype(str)
    for col in (LOAD, TEMPERATURE, *[c for c in OPTIONAL if c in out.columns]):
        try:
            out[col] = pd.to_numeric(out[col], errors="raise").astype("float64")
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"column {col} is not numeric: {exc}", field=col) from None
    cols = [c for c in ALL_COLUMNS if c in out.columns]
    extra = [c for c in out.columns if c not in ALL_COLUMNS]
    return out[cols + extra].sort_values([REGION, TIMESTAMP], kind="stable").reset_index(drop=True)


def write_table(df: pd.DataFrame, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write a canonical table to Parquet with gridcast metadata (freq always recorded)."""
    df = validate(df)
    meta = dict(meta or {})
    if "freq" not in meta and df[TIMESTAMP].nunique() >= 2:
        meta["freq"] = infer_freq(df[TIMESTAMP])
    table = pa.Table.from_pandas(df, preserve_index=False)
    existing = table.schema.metadata or {}
    table = table.replace_schema_metadata(
        {**existing, META_KEY: json.dumps(meta, default=_json_default).encode()}
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def read_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a canonical Parquet table and its gridcast metadata.

    Raises:
        UserInputError: the file does not exist or is not Parquet.
    """
    path = Path(path)
    if not path.exists():
        raise UserInputError(f"file not found: {path}", field="path")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserInputError(f"{path} is not a readable Parquet file ({exc})", field="path") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    meta = json.loads(raw) if raw else {}
    df = table.to_pandas()
    return validate(df), meta


def regular(frame: pd.DataFrame, freq: str | None = None, *, start: pd.Timestamp | None = None) -> pd.DataFrame:
    """A frame on a UTC index, put on its regular grid: the one "put on the grid" helper.

    Sorted (stable), duplicated timestamps resolved by the last row given, missing steps
    inserted as NaN rows. The grid runs from ``start`` (default: the first timestamp) to
    the last timestamp every ``freq`` (default: :func:`infer_freq`).

    Raises:
        UserInputError: the index is not timezone-aware.

    Example:
        >>> idx = pd.DatetimeIndex(["2024-01-01 03:00", "2024-01-01 00:00", "2024-01-01 01:00",
        ...                         "2024-01-01 03:00"], tz="UTC")
        >>> regular(pd.DataFrame({"load_mw": [3.0, 1.0, 2.0, 4.0]}, index=idx))["load_mw"].tolist()
        [1.0, 2.0, nan, 4.0]
    """
    index = pd.DatetimeIndex(frame.index)
    if index.tz is None:
        raise UserInputError("the time index must be timezone-aware (UTC)", field=TIMESTAMP)
    frame = frame.sort_index(kind="stable")
    frame = frame[~frame.index.duplicated(keep="last")]
    if str(frame.index.tz) != "UTC":
        frame = frame.tz_convert("UTC")
    if len(frame) == 0:
        return frame
    step = pd.Timedelta(freq or infer_freq(frame.index))
    first = frame.index[0] if start is None else pd.Timestamp(start).tz_convert("UTC")
    grid = pd.date_range(first, frame.index[-1], freq=step, name=frame.index.name)
    return frame.reindex(grid)


def region_series(df: pd.DataFrame, region: str, column: str = LOAD) -> pd.Series:
    """One region's column as a Series on a UTC DatetimeIndex."""
    part = df[df[REGION] == region]
    return pd.Series(part[column].to_numpy(), index=pd.DatetimeIndex(part[TIMESTAMP]), name=column)


def region_frame(df: pd.DataFrame, region: str) -> pd.DataFrame:
    """One region's rows indexed by timestamp (UTC), without the region column."""
    part = df[df[REGION] == region].drop(columns=[REGION])
    return part.set_index(TIMESTAMP).sort_index()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
