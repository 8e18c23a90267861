"""Guessing what a user's file means: which column is which, the temperature unit, the time format.

Owns the guesses of :mod:`training.data.importer`, each returned with its evidence so
that the import summary and ``meta["import_report"]["inferred"]`` can say what was
chosen and why. A flag always wins over a guess; a guess that could be wrong in a way
that matters (two candidate load columns, a Fahrenheit-looking temperature) is an
error that names the candidates and the flag to pass — never a silent wrong table.

Column names are compared *normalised*: lower case, every run of non-letters and
non-digits made one ``_`` (``"Total Load (MW)"`` → ``total_load_mw``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from gridcast.errors import UserInputError

#: exact (normalised) names per role, in preference order after the canonical one
TIME_ALIASES = ("timestamp", "time", "datetime", "date_time", "timestamp_utc", "time_utc", "datetime_utc", "utc",
                "dt_iso", "dt", "ts", "interval_start", "period_start", "start_time", "fecha_hora", "date_heure",
                "horodatage", "zeit", "zeitstempel")
DATE_ALIASES = ("date", "day", "settlement_date", "datum", "fecha", "data")
HOUR_ALIASES = ("hour", "hr", "he", "hour_ending", "hour_beginning", "heure", "hora", "stunde")
LOAD_ALIASES = ("load_mw", "load", "demand", "consumption", "demand_mw", "consumption_mw", "total_load",
                "total_load_actual", "actual_load", "load_actual", "system_load", "electricity_demand")
LOAD_WORDS = ("load", "demand", "consumption", "consommation", "verbrauch", "consumo", "demanda", "last")
TEMP_ALIASES = ("temperature_c", "temperature", "temp", "t2m", "air_temperature", "tmp", "temp_c",
                "temperature_f", "temp_f", "temperature_k", "temp_k", "température", "temperatura", "temperatur")
TEMP_WORDS = ("temperature", "temp", "t2m", "température", "temperatura", "temperatur")
#: words that make a load or temperature column something else (a forecast, a minimum, ...)
EXCLUDE_WORDS = ("forecast", "fc", "predicted", "prediction", "reference", "ahead", "min", "max", "dew",
                 "dewpoint", "feels", "apparent", "wetbulb", "soil", "water", "sea")

#: temperature-unit evidence thresholds (values read as °C)
KELVIN_MEDIAN = 200.0  # no air temperature in °C or °F has a median above this
CELSIUS_MAX_MEDIAN = 32.0  # warmest grid regions' yearly median air temperature stays below ~30 °C
CELSIUS_MAX_P99 = 50.0  # 1 % of hours above 50 °C: not Celsius on Earth
CELSIUS_MAX_RANGE = 55.0  # p1..p99 wider than 55 degrees: Fahrenheit's 1.8× wider scale


def normalise(name: str) -> str:
    """Lower case, runs of non-alphanumerics as one ``_``.

    Example:
        >>> normalise("Total Load (MW)"), normalise("  Température ")
        ('total_load_mw', 'température')
    """
    return re.sub(r"[\W_]+", "_", str(name).strip().lower()).strip("_")


def _words(name: str) -> set[str]:
    return set(normalise(name).split("_"))


def _pick(role: str, columns: Sequence[str], aliases: Sequence[str], words: Sequence[str], flag: str,
          exclude: Sequence[str] = EXCLUDE_WORDS) -> tuple[str | None, str]:
    """One column for ``role``: the canonical name, else the only exact alias, else the only one holding a role word.

    Raises:
        UserInputError: several columns fit equally (lists them and the flag to pass).
    """
    norm = {c: normalise(c) for c in columns}
    if aliases and (canonical := [c for c in columns if norm[c] == aliases[0]]) and len(canonical) == 1:
        return canonical[0], f"name matches {aliases[0]!r}"
    hits = [c for c in columns if norm[c] in aliases]
    if len(hits) == 1:
        return hits[0], f"name matches {norm[hits[0]]!r}"
    if len(hits) > 1:
        raise UserInputError(f"several columns could be the {role}: {', '.join(map(repr, hits))}; pass {flag}",
                             field=flag)
    hits = [c for c in columns if _words(c) & set(words) and not _words(c) & set(exclude)]
    if len(hits) == 1:
        return hits[0], f"the only column named like a {role} ({', '.join(sorted(_words(hits[0]) & set(words)))})"
    if len(hits) > 1:
        raise UserInputError(f"several columns could be the {role}: {', '.join(map(repr, hits))}; pass {flag}",
                             field=flag)
    return None, ""


def infer_columns(columns: Sequence[str], *, time_col: str | None, load_col: str | None,
                  temp_col: str | None, need_temperature: bool) -> dict[str, Any]:
    """Choose the time (or date + hour), load and temperature columns; flags win.

    Returns:
        ``{"time": col | None, "date": col | None, "hour": col | None, "load": col,
        "temperature": col | None, "chosen": [{"role", "column", "why"}]}``.

    Raises:
        UserInputError: no candidate for a needed role (the message lists the columns
            and the flag), or several.
    """
    columns = list(columns)
    listed = ", ".join(map(repr, columns))
    chosen: list[dict[str, str]] = []
    out: dict[str, Any] = {"time": None, "date": None, "hour": None}

    def note(role: str, col: str, why: str) -> None:
        chosen.append({"role": role, "column": col, "why": why})

    if time_col:
        out["time"] = time_col
        note("timestamp", time_col, "--time-col")
    else:
        col, why = _pick("timestamp", columns, TIME_ALIASES, (), "--time-col")
        date, dwhy = _pick("date", columns, DATE_ALIASES, (), "--time-col")
        hour, hwhy = _pick("hour", columns, HOUR_ALIASES, (), "--time-col")
        if col:
            out["time"] = col
            note("timestamp", col, why)
        elif date and hour:
            out["date"], out["hour"] = date, hour
            note("date", date, dwhy)
            note("hour", hour, hwhy)
        elif date:
            out["time"] = date
            note("timestamp", date, dwhy)
        else:
            raise UserInputError(f"no timestamp column found among {listed}; pass --time-col", field="time_col")
    used = {out["time"], out["date"], out["hour"]}
    rest = [c for c in columns if c not in used]
    if load_col:
        out["load"] = load_col
        note("load_mw", load_col, "--load-col")
    else:
        col, why = _pick("load", rest, LOAD_ALIASES, LOAD_WORDS, "--load-col")
        if not col:
            raise UserInputError(f"no load column found among {listed}; pass --load-col", field="load_col")
        out["load"] = col
        note("load_mw", col, why)
    out["temperature"] = temp_col
    if temp_col:
        note("temperature_c", temp_col, "--temp-col")
    elif need_temperature:
        col, why = _pick("temperature", [c for c in rest if c != out["load"]], TEMP_ALIASES, TEMP_WORDS, "--temp-col")
        if not col:
            raise UserInputError(f"no temperature column found among {listed}: pass --temp-col, or --weather FILE "
                                 "with --weather-temp-col", field="temp_col")
        out["temperature"] = col
        note("temperature_c", col, why)
    out["chosen"] = chosen
    return out


# ---- temperature unit ------------------------------------------------------------------

_UNIT_IN_NAME = (("F", re.compile(r"°\s*f\b|\bdeg_?f\b|fahrenheit|_f$|\(f\)", re.IGNORECASE)),
                 ("K", re.compile(r"kelvin|_k$|\(k\)", re.IGNORECASE)),
                 ("C", re.compile(r"°\s*c\b|\bdeg_?c\b|celsius|_c$|\(c\)", re.IGNORECASE)))
UNIT_NAMES = {"C": "Celsius", "K": "Kelvin", "F": "Fahrenheit"}


def unit_in_name(name: str) -> str | None:
    """The unit a column name states (``Temp (°F)``, ``temp_k``), if any."""
    text = str(name).strip()
    for unit, pattern in _UNIT_IN_NAME:
        if pattern.search(text) or pattern.search(normalise(text)):
            return unit
    return None


def infer_temp_unit(values: pd.Series, timestamps: pd.Series | None = None,
                    name: str | None = None) -> tuple[str, dict[str, Any]]:
    """The temperature unit the values point to, with the evidence.

    Rules, on the values read as numbers: median above 200 → Kelvin; median above 32,
    or 1 % of values above 50, or a p1..p99 range wider than 55 degrees → Fahrenheit
    (no grid's air temperature does that in °C); else Celsius. The seasonal swing
    (warmest minus coldest monthly median) is reported too. A cold-climate winter in
    °F (say 5..30) is also a plausible °C winter: the values cannot tell, so say
    ``--temp-unit F``; the column name's unit, when it states one, is reported.

    Example:
        >>> infer_temp_unit(pd.Series([30.0, 38.0, 46.0]))[0], infer_temp_unit(pd.Series([280.0, 290.0]))[0]
        ('F', 'K')
    """
    x = pd.to_numeric(values, errors="coerce").dropna()
    if x.empty:
        return "C", {"note": "no values"}
    med, p1, p99 = float(x.median()), float(x.quantile(0.01)), float(x.quantile(0.99))
    evidence: dict[str, Any] = {"median": round(med, 2), "p1": round(p1, 2), "p99": round(p99, 2)}
    if timestamps is not None and len(timestamps) == len(values):
        frame = pd.DataFrame({"v": pd.to_numeric(values, errors="coerce").to_numpy(),
                              "m": pd.DatetimeIndex(timestamps).strftime("%Y-%m")}).dropna()
        monthly = frame.groupby("m")["v"].median()
        if len(monthly) >= 2:
            evidence["seasonal_swing"] = round(float(monthly.max() - monthly.min()), 2)
            evidence["months"] = int(len(monthly))
    if name is not None and (stated := unit_in_name(name)):
        evidence["name_says"] = stated
    if med > KELVIN_MEDIAN:
        unit, why = "K", f"median {med:.1f} is above {KELVIN_MEDIAN:.0f}"
    elif med > CELSIUS_MAX_MEDIAN:
        unit, why = "F", f"median {med:.1f} is above {CELSIUS_MAX_MEDIAN:.0f}, too hot for °C"
    elif p99 > CELSIUS_MAX_P99:
        unit, why = "F", f"1 % of values above {p99:.1f}, too hot for °C"
    elif p99 - p1 > CELSIUS_MAX_RANGE:
        unit, why = "F", f"p1..p99 spans {p99 - p1:.1f} degrees, too wide for °C"
    else:
        unit, why = "C", "median, range and swing fit °C"
    evidence["rule"] = why
    return unit, evidence


# ---- timestamps --------------------------------------------------------------------------

_EPOCH = re.compile(r"^\d{9,13}(?:\.\d+)?$")


def parse_epoch(values: pd.Series, *, column: str = "timestamp", label: str = "file"
                ) -> tuple[pd.Series | None, str | None]:
    """Epoch seconds (9-10 digits) or milliseconds (12-13 digits) → UTC; (None, None) otherwise.

    A column at least 90 % epoch numbers is an epoch column: another value in it is
    an error naming its row and its whole text.

    Example:
        >>> ts, unit = parse_epoch(pd.Series(["1672531200", "1672534800"]))
        >>> ts.iloc[0].isoformat(), unit
        ('2023-01-01T00:00:00+00:00', 'epoch seconds')
    """
    text = values.astype("string").str.strip()
    looks = text.str.match(_EPOCH).fillna(False).astype(bool)
    if looks.mean() < 0.9:
        return None, None
    digits = text[looks].str.split(".").str[0].str.len()
    if digits.between(9, 10).all():
        unit, name = "s", "epoch seconds"
    elif digits.between(12, 13).all():
        unit, name = "ms", "epoch milliseconds"
    else:
        return None, None
    if not looks.all():
        bad = int(np.flatnonzero(~looks.to_numpy())[0])
        raise UserInputError(f"cannot parse timestamp in column {column!r} of {label}: the column holds {name}, but "
                             f"data row {bad + 1} (line {bad + 2} of a CSV with a header) has {str(values.iloc[bad])!r}",
                             field=column)
    ts = pd.to_datetime(text.astype(float), unit=unit, utc=True)
    return pd.Series(ts, index=values.index).astype("datetime64[ns, UTC]"), name


def combine_date_hour(date: pd.Series, hour: pd.Series, *, date_col: str, hour_col: str,
                      label: str) -> tuple[pd.Series, dict[str, Any]]:
    """Separate date and hour columns → one text timestamp column (local wall time).

    Hours 0..23 (or ``HH:MM``) start their interval; 1..24 are *hour ending* (the
    usual market convention: hour 1 is 00:00-01:00) and are moved back one hour.
    Reported either way.

    Raises:
        UserInputError: an hour that is neither a whole number nor ``HH:MM``.
    """
    text = hour.astype("string").str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().all() and (numeric == numeric.round()).all():
        h = numeric.astype(int)
        ending = bool(h.max() == 24 or (h.min() >= 1 and h.max() <= 24 and not (h == 0).any()))
        if h.min() < 0 or h.max() > 24:
            raise UserInputError(f"column {hour_col!r} of {label} has hours outside 0..24 (e.g. {h[(h < 0) | (h > 24)].iloc[0]})",
                                 field=hour_col)
        offset = pd.to_timedelta(h - (1 if ending else 0), unit="h")
        convention = "hour ending (1..24): moved back one hour to the interval start" if ending else "hour beginning (0..23)"
    else:
        offset = pd.to_timedelta(text.where(text.str.count(":") != 1, text + ":00"), errors="coerce")
        if offset.isna().any():
            bad = int(np.flatnonzero(offset.isna().to_numpy())[0])
            raise UserInputError(f"column {hour_col!r} of {label}: data row {bad + 1} has {str(hour.iloc[bad])!r}, "
                                 "neither an hour number nor HH:MM", field=hour_col)
        convention = "time of day (HH:MM)"
    day = pd.to_datetime(date.astype("string").str.strip(), format="ISO8601", errors="coerce")
    if day.isna().any():
        day = pd.to_datetime(date.astype("string").str.strip(), format="mixed", errors="coerce")
    if day.isna().any():
        bad = int(np.flatnonzero(day.isna().to_numpy())[0])
        raise UserInputError(f"cannot parse date in column {date_col!r} of {label}: data row {bad + 1} has "
                             f"{str(date.iloc[bad])!r}", field=date_col)
    stamps = (day.dt.normalize() + offset).dt.strftime("%Y-%m-%d %H:%M:%S")
    return stamps, {"date_column": date_col, "hour_column": hour_col, "convention": convention}
