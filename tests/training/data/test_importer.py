"""The importer maps real-world file shapes onto the canonical table and reports what it did.

Every case builds its raw file from the seeded synthetic generator, so the expected
canonical values are known exactly and a broken mapping cannot pass.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data.importer import import_table, localize
from gridcast.synthetic import generate
from gridcast.errors import UserInputError
from gridcast.schema import infer_freq


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    """One region, 10 days hourly, in UTC: what every import below must reproduce."""
    df, _ = generate(days=10, regions=1, country="ES", seed=3, start="2023-10-25")
    return df


def _raw(truth: pd.DataFrame, *, times: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"when": times, "MW": truth["load_mw"], "T": truth["temperature_c"],
                         "fc": truth["load_mw"] * 1.01})


def test_offsets_become_utc_across_a_clock_change(truth, tmp_path):
    local = truth["timestamp"].dt.tz_convert("Europe/Madrid")
    path = tmp_path / "load.csv"
    _raw(truth, times=local.map(lambda t: t.isoformat())).to_csv(path, index=False)

    df, meta = import_table(path, time_col="when", load_col="MW", temp_col="T", reference_col="fc", region="ES")

    assert df["timestamp"].tolist() == truth["timestamp"].tolist()
    assert not df["timestamp"].duplicated().any()
    np.testing.assert_allclose(df["load_mw"], truth["load_mw"])
    np.testing.assert_allclose(df["reference_mw"], truth["load_mw"] * 1.01)
    assert meta["freq"] == "1h"
    assert meta["sources"] == {"load_mw": str(path), "reference_mw": str(path), "temperature_c": str(path)}
    assert meta["source_columns"]["load_mw"] == "MW"
    assert "clock_change" not in meta["import_report"]


def test_naive_fall_back_hour_is_resolved_by_file_order(truth, tmp_path):
    # wall clock in Madrid: 29 Oct 2023 02:00-02:59 happens twice
    wall = truth["timestamp"].dt.tz_convert("Europe/Madrid").dt.tz_localize(None)
    assert wall.duplicated().sum() == 1
    path = tmp_path / "naive.csv"
    _raw(truth, times=wall.astype(str)).to_csv(path, index=False)

    df, meta = import_table(path, time_col="when", load_col="MW", temp_col="T", tz="Europe/Madrid")

    assert df["timestamp"].tolist() == truth["timestamp"].tolist()
    clock = meta["import_report"]["clock_change"]
    assert clock["ambiguous"] == 2
    assert clock["ambiguous_resolved_by_order"] == 2
    assert clock["ambiguous_single"] == 0
    assert clock["ambiguous_examples"] == ["2023-10-29 02:00:00"]
    assert meta["timezone"] == "Europe/Madrid"


@pytest.mark.parametrize(("rule", "rows_lost"), [("drop", 1), ("shift", 0)], ids=["drop", "shift"])
def test_naive_spring_forward_hour_is_dropped_or_shifted(rule, rows_lost):
    # a naive regular grid that (wrongly) contains 2023-03-26 02:00, which Madrid skipped
    naive = pd.Series(pd.date_range("2023-03-26 00:00", periods=5, freq="h"))
    utc, report = localize(naive, "Europe/Madrid", nonexistent=rule)

    assert report["nonexistent"] == 1
    assert report["nonexistent_examples"] == ["2023-03-26 02:00:00"]
    assert int(utc.isna().sum()) == rows_lost
    assert utc.dropna().iloc[0] == pd.Timestamp("2023-03-25 23:00", tz="UTC")


def test_weather_long_format_dedupes_reports_and_averages_stations(truth, tmp_path):
    load = tmp_path / "load.csv"
    _raw(truth, times=truth["timestamp"].astype(str)).to_csv(load, index=False)
    ts = truth["timestamp"].dt.tz_convert("Europe/Madrid").map(lambda t: t.isoformat())
    offsets = {"Madrid": 0.0, " Bilbao": -4.0, "Seville": 7.0}  # note the leading blank
    rows = [pd.DataFrame({"dt": ts, "city": city, "temp": truth["temperature_c"] + off + 273.15,
                          "hum": 50.0 + off, "note": "ok"}) for city, off in offsets.items()]
    weather = pd.concat(rows, ignore_index=True)
    exact = weather.iloc[[0]]
    conflicting = weather.iloc[[1, 2]].assign(temp=400.0)  # must lose against the first row
    other_col_only = weather.iloc[[3]].assign(note="re-sent")  # same values, different row
    weather = pd.concat([weather, exact, conflicting, other_col_only], ignore_index=True)
    wpath = tmp_path / "weather.csv.gz"
    weather.to_csv(wpath, index=False)

    df, meta = import_table(load, time_col="when", load_col="MW", tz="Europe/Madrid", weather=wpath,
                            station_col="city", weather_time_col="dt", weather_temp_col="temp",
                            temp_unit="K", weather_cols={"humidity_pct": "hum"})

    mean_offset = np.mean(list(offsets.values()))
    np.testing.assert_allclose(df["temperature_c"], truth["temperature_c"] + mean_offset, atol=1e-9)
    np.testing.assert_allclose(df["humidity_pct"], 50.0 + mean_offset)
    w = meta["import_report"]["weather"]
    assert w["duplicates"]["rows"] == 4
    assert w["duplicates"]["exact"] == 1
    assert w["duplicates"]["conflicting"] == 3
    assert w["stations"] == ["Bilbao", "Madrid", "Seville"]
    assert w["temperature_by_station_c"]["Seville"]["max"] == pytest.approx(truth["temperature_c"].max() + 7, abs=0.01)
    assert w["temperature_single_station_c"]["min"] == pytest.approx(truth["temperature_c"].min() - 4, abs=0.01)
    assert w["load_timestamps_without_weather"] == 0
    assert meta["sources"]["temperature_c"] == str(wpath)
    assert meta["sources"]["humidity_pct"] == str(wpath)
    assert meta["sources"]["load_mw"] == str(load)


def test_weather_wide_format_averages_columns(truth, tmp_path):
    load = tmp_path / "load.csv"
    _raw(truth, times=truth["timestamp"].astype(str)).to_csv(load, index=False)
    wide = pd.DataFrame({"t": truth["timestamp"].astype(str), "a": truth["temperature_c"] - 1,
                         "b": truth["temperature_c"] + 3})
    wpath = tmp_path / "wide.parquet"
    wide.to_parquet(wpath)

    df, meta = import_table(load, time_col="when", load_col="MW", tz="UTC", weather=wpath,
                            weather_time_col="t", weather_temp_col="a, b")

    np.testing.assert_allclose(df["temperature_c"], truth["temperature_c"] + 1)
    assert meta["source_columns"]["temperature_c"] == "a,b"
    assert meta["import_report"]["weather"]["format"] == "wide"


@pytest.mark.parametrize(
    ("unit", "convert"),
    [("C", lambda c: c), ("K", lambda c: c + 273.15), ("F", lambda c: c * 9 / 5 + 32)],
    ids=["celsius", "kelvin", "fahrenheit"],
)
def test_temperature_units_convert_to_celsius(truth, tmp_path, unit, convert):
    raw = _raw(truth, times=truth["timestamp"].astype(str)).assign(T=convert(truth["temperature_c"]))
    path = tmp_path / "load.csv"
    raw.to_csv(path, index=False)

    df, _ = import_table(path, time_col="when", load_col="MW", temp_col="T", temp_unit=unit, tz="UTC")

    np.testing.assert_allclose(df["temperature_c"], truth["temperature_c"], atol=1e-9)


@pytest.mark.parametrize(("unit", "convert", "hint"), [
    ("C", lambda c: c + 273.15, "Kelvin — pass --temp-unit K"),
    ("K", lambda c: c, "Celsius — pass --temp-unit C"),
], ids=["kelvin-as-celsius", "celsius-as-kelvin"])
def test_wrong_temperature_unit_names_the_likely_one(truth, tmp_path, unit, convert, hint):
    raw = _raw(truth, times=truth["timestamp"].astype(str)).assign(T=convert(truth["temperature_c"]))
    path = tmp_path / "load.csv"
    raw.to_csv(path, index=False)

    with pytest.raises(UserInputError, match=hint):
        import_table(path, time_col="when", load_col="MW", temp_col="T", temp_unit=unit, tz="UTC")


def _write(raw: pd.DataFrame, tmp_path: Path, kind: str) -> Path:
    if kind == "parquet":
        path = tmp_path / "load.parquet"
        raw.to_parquet(path)
    elif kind == "zip":
        csv = tmp_path / "inner.csv"
        raw.to_csv(csv, index=False)
        path = tmp_path / "load.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.write(csv, "load.csv")
    else:
        path = tmp_path / f"load.{kind}"
        raw.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "zip", "parquet"])
def test_file_formats_give_the_same_table(truth, tmp_path, kind):
    raw = _raw(truth, times=truth["timestamp"])  # tz-aware datetimes (Parquet keeps them)
    if kind != "parquet":
        raw = raw.assign(when=truth["timestamp"].map(lambda t: t.isoformat()))
    path = _write(raw, tmp_path, kind)

    df, meta = import_table(path, time_col="when", load_col="MW", temp_col="T", region="X")

    assert df["timestamp"].tolist() == truth["timestamp"].tolist()
    np.testing.assert_allclose(df["load_mw"], truth["load_mw"])
    assert set(df["region"]) == {"X"}
    assert meta["sources"]["load_mw"] == str(path)


def test_half_hourly_frequency_is_inferred(tmp_path):
    df0, _ = generate(days=3, freq="30min", seed=2)
    path = tmp_path / "vic.csv"
    df0.assign(timestamp=df0["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(path, index=False)

    df, meta = import_table(path, temp_col="temperature_c")

    assert meta["freq"] == "30min" == infer_freq(df["timestamp"])
    assert len(df) == 3 * 48


def test_duplicate_load_rows_exact_dropped_conflicting_kept_and_reported(truth, tmp_path):
    raw = _raw(truth, times=truth["timestamp"].astype(str))
    raw = pd.concat([raw, raw.iloc[[5, 6]], raw.iloc[[9]].assign(MW=1.0)], ignore_index=True)
    path = tmp_path / "dups.csv"
    raw.to_csv(path, index=False)

    df, meta = import_table(path, time_col="when", load_col="MW", temp_col="T", tz="UTC")

    rep = meta["import_report"]
    assert rep["duplicates_exact_dropped"] == 2
    assert rep["duplicates_conflicting"] == 1
    assert len(df) == len(truth) + 1  # the conflicting pair stays for `data check`
    assert rep["duplicates_conflicting_examples"] == [str(truth["timestamp"].iloc[9])]


@pytest.mark.parametrize("how", [{"dayfirst": True}, {"date_format": "%d.%m.%Y %H:%M"}], ids=["dayfirst", "format"])
def test_european_dates_read_day_first_when_asked(truth, tmp_path, how):
    raw = _raw(truth, times=truth["timestamp"].dt.strftime("%d.%m.%Y %H:%M"))
    path = tmp_path / "eu.csv"
    raw.to_csv(path, index=False)

    df, _ = import_table(path, time_col="when", load_col="MW", temp_col="T", tz="UTC", **how)
    plain, _ = import_table(path, time_col="when", load_col="MW", temp_col="T", tz="UTC")

    assert df["timestamp"].tolist() == truth["timestamp"].tolist()
    # without it, 01.11.2023 is read as 11 January: the day/month swap `data check` hunts for
    assert plain["timestamp"].tolist() != truth["timestamp"].tolist()
