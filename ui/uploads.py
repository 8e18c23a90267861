"""Upload parsing: files a person drops on the UI → what the service API takes.

Owns the Forecast tab's history CSV (canonical columns or mapped ones → ``history``
observations, every problem naming the column and the row) and the Data quality tab's
table (Parquet or CSV → a ``POST /data/check`` body: Parquet is read here with its
metadata, CSV travels as text and the service names what is wrong with it). No HTTP and
no Gradio here; nothing happens at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from gridcast.errors import UserInputError


def read_history_csv(
    path: str | Path,
    *,
    time_col: str = "timestamp",
    load_col: str = "load_mw",
    temp_col: str | None = "temperature_c",
) -> pd.DataFrame:
    """An uploaded history CSV → observations on a UTC index (``load_mw``, maybe ``temperature_c``).

    Canonical files need no mapping; other files name their columns. Timestamps
    without an offset are read as UTC. Every problem names the column, and the row
    where one row is at fault (row 1 = the first data row, line 2 of the file).

    Raises:
        UserInputError: unreadable file, a missing column, a bad timestamp or number.
    """
    name = Path(path).name
    time_col, load_col = (time_col or "timestamp").strip(), (load_col or "load_mw").strip()
    temp_col = (temp_col or "").strip() or None
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise UserInputError(f"{name} is not a readable CSV file ({type(exc).__name__})", field="history") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    columns = ", ".join(repr(c) for c in raw.columns)
    for col, what in ((time_col, "timestamp"), (load_col, "load")):
        if col not in raw.columns:
            raise UserInputError(f"{name} has no column {col!r} (the {what} column); its columns are: {columns}",
                                 field=col)
    if temp_col and temp_col not in raw.columns:
        if temp_col != "temperature_c":  # a mapping the person typed must exist; the default may be absent
            raise UserInputError(f"{name} has no column {temp_col!r} (the temperature column); "
                                 f"its columns are: {columns}", field=temp_col)
        temp_col = None
    if raw.empty:
        raise UserInputError(f"{name} has a header but no rows", field="history")

    stamps = pd.to_datetime(raw[time_col], utc=True, errors="coerce", format="ISO8601")
    _first_bad(stamps.isna(), raw[time_col], name, time_col, "is not a timestamp (use ISO 8601, e.g. 2024-01-31T13:00Z)")
    out = pd.DataFrame(index=pd.DatetimeIndex(stamps, name="timestamp"))
    load = pd.to_numeric(raw[load_col], errors="coerce")
    _first_bad(load.isna(), raw[load_col], name, load_col, "is not a number (MW)")
    out["load_mw"] = load.to_numpy(dtype=float)
    if temp_col:
        temp = pd.to_numeric(raw[temp_col].replace("", None), errors="coerce")
        bad = temp.isna() & (raw[temp_col].str.strip() != "")
        _first_bad(bad, raw[temp_col], name, temp_col, "is not a number (°C)")
        out["temperature_c"] = temp.to_numpy(dtype=float)
    return out


def _first_bad(mask: pd.Series, values: pd.Series, name: str, column: str, problem: str) -> None:
    if mask.any():
        pos = int(mask.to_numpy().argmax())
        raise UserInputError(
            f"{name}, row {pos + 1} (line {pos + 2}), column {column!r}: {values.iloc[pos]!r} {problem}"
            + (f"; {int(mask.sum()) - 1} more such rows" if mask.sum() > 1 else ""),
            field=column,
        )


def history_payload(frame: pd.DataFrame, max_points: int) -> list[dict[str, Any]]:
    """The last ``max_points`` rows as ``history`` observations (missing temperature omitted)."""
    rows = []
    for ts, row in frame.tail(max_points).iterrows():
        obs: dict[str, Any] = {"timestamp": ts.isoformat(), "load_mw": float(row["load_mw"])}
        temp = row.get("temperature_c")
        if temp is not None and pd.notna(temp):
            obs["temperature_c"] = float(temp)
        rows.append(obs)
    return rows



def quality_body(path: str | Path) -> dict[str, Any]:
    """An uploaded canonical table → the body of ``POST /data/check``.

    Parquet (``gridcast data sample/import`` output) keeps its metadata (time zone,
    sources); any other file is sent as CSV text for the service to parse.

    Raises:
        UserInputError: the file cannot be read.
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        from gridcast.quality.tables import columns_of
        from gridcast.schema import read_table

        df, meta = read_table(path)
        return {"columns": columns_of(df), "meta": meta}
    try:
        return {"csv": path.read_text(encoding="utf-8")}
    except (UnicodeDecodeError, OSError) as exc:
        raise UserInputError(f"{path.name} is not a readable CSV file ({type(exc).__name__})", field="upload") from None
