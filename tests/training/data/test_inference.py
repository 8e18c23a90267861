"""Real users' files, imported with no mapping flags: each guess right and reported, or exit 2 saying why.

One generated file per awkward case from issue 12 (nothing from ``../shared``). Every
case states its expected outcome: the canonical table (compared with the generator's
truth, so a wrong guess cannot pass) and the guess in the report — or exit code 2
with a message naming the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.cli import main
from training.data.importer import import_table
from gridcast.quality.checks import check
from gridcast.synthetic import generate
from gridcast.schema import read_table


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    """Two January weeks, hourly, UTC (cold: 30-46 °F is the issue's Fahrenheit case)."""
    df, _ = generate(days=14, regions=1, country="DE", seed=4, start="2023-01-02")
    return df.drop(columns=["humidity_pct"])


def _iso(ts: pd.Series) -> pd.Series:
    return ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _csv(df: pd.DataFrame, path: Path, **kw) -> Path:
    df.to_csv(path, index=False, **kw)
    return path


def canonical(t, tmp):
    return _csv(t.assign(timestamp=_iso(t["timestamp"]))[["timestamp", "load_mw", "temperature_c"]], tmp / "c.csv")


def aliases(t, tmp):
    return _csv(pd.DataFrame({"Time": _iso(t["timestamp"]), "Demand": t["load_mw"], "Temperature": t["temperature_c"]}),
                tmp / "a.csv")


def european(t, tmp):
    raw = pd.DataFrame({"timestamp": _iso(t["timestamp"]), "load_mw": t["load_mw"], "temperature_c": t["temperature_c"]})
    return _csv(raw, tmp / "eu.csv", sep=";", decimal=",")


def latin1(t, tmp):
    raw = pd.DataFrame({"date_heure": _iso(t["timestamp"]), "consommation": t["load_mw"], "température": t["temperature_c"]})
    path = tmp / "fr.csv"
    path.write_bytes(raw.to_csv(index=False, sep=";", decimal=",").encode("cp1252"))
    return path


def bom(t, tmp):
    path = tmp / "bom.csv"
    raw = pd.DataFrame({"time": _iso(t["timestamp"]), "load": t["load_mw"], "temp": t["temperature_c"]})
    path.write_bytes(b"\xef\xbb\xbf" + raw.to_csv(index=False).encode("utf-8"))
    return path


def epoch_s(t, tmp):
    secs = (t["timestamp"].astype("int64") // 10**9).astype(str)
    return _csv(pd.DataFrame({"timestamp": secs, "load_mw": t["load_mw"], "temperature_c": t["temperature_c"]}),
                tmp / "e.csv")


def epoch_ms(t, tmp):
    ms = (t["timestamp"].astype("int64") // 10**6).astype(str)
    return _csv(pd.DataFrame({"ts": ms, "demand": t["load_mw"], "t2m": t["temperature_c"]}), tmp / "ms.csv")


def date_hour(t, tmp):
    # local Berlin wall time as date + hour ending 1..24 (the market convention)
    local = t["timestamp"].dt.tz_convert("Europe/Berlin")
    return _csv(pd.DataFrame({"Date": local.dt.strftime("%Y-%m-%d"), "Hour": local.dt.hour + 1,
                              "Load": t["load_mw"], "Temp": t["temperature_c"]}), tmp / "dh.csv")


def xlsx(t, tmp):
    path = tmp / "load.xlsx"
    pd.DataFrame({"Datetime": _iso(t["timestamp"]), "Consumption": t["load_mw"],
                  "Temperature": t["temperature_c"]}).to_excel(path, index=False)
    return path


def fahrenheit(t, tmp):
    return _csv(pd.DataFrame({"timestamp": _iso(t["timestamp"]), "load_mw": t["load_mw"],
                              "temperature": t["temperature_c"] * 9 / 5 + 32}), tmp / "f.csv")


def kelvin(t, tmp):
    return _csv(pd.DataFrame({"timestamp": _iso(t["timestamp"]), "load_mw": t["load_mw"],
                              "temperature": t["temperature_c"] + 273.15}), tmp / "k.csv")


def two_loads(t, tmp):
    return _csv(pd.DataFrame({"time": _iso(t["timestamp"]), "Demand": t["load_mw"], "Load": t["load_mw"],
                              "temp": t["temperature_c"]}), tmp / "two.csv")


OK_CASES = [
    pytest.param(canonical, [], {"load_mw": "name matches 'load_mw'"}, {"format": "csv", "delimiter": "comma"},
                 id="canonical-names"),
    pytest.param(aliases, [], {"load_mw": "'Demand'", "timestamp": "'Time'"}, {}, id="aliases"),
    pytest.param(european, [], {}, {"delimiter": "semicolon", "decimal": "comma"}, id="semicolon-decimal-comma"),
    pytest.param(latin1, [], {"temperature_c": "'température'", "load_mw": "'consommation'"},
                 {"encoding": "cp1252", "decimal": "comma"}, id="latin1-header"),
    pytest.param(bom, [], {}, {"encoding": "utf-8 with BOM"}, id="utf8-bom"),
    pytest.param(epoch_s, [], {}, {}, id="epoch-seconds"),
    pytest.param(epoch_ms, [], {"timestamp": "'ts'", "temperature_c": "'t2m'"}, {}, id="epoch-milliseconds"),
    pytest.param(date_hour, ["--tz", "Europe/Berlin"], {"date": "'Date'", "hour": "'Hour'"}, {}, id="date-plus-hour"),
    pytest.param(xlsx, [], {"load_mw": "'Consumption'"}, {"format": "xlsx"}, id="excel"),
    pytest.param(fahrenheit, ["--temp-unit", "F"], {}, {}, id="fahrenheit-stated"),
    pytest.param(kelvin, ["--temp-unit", "K"], {}, {}, id="kelvin-stated"),
]


@pytest.mark.parametrize(("make", "flags", "chosen", "dialect"), OK_CASES)
def test_imported_correctly_with_the_guess_reported(truth, tmp_path, capsys, make, flags, chosen, dialect):
    src, out = make(truth, tmp_path), tmp_path / "out.parquet"

    assert main(["data", "import", str(src), "--out", str(out), *flags]) == 0

    printed = capsys.readouterr().out
    df, meta = read_table(out)
    assert df["timestamp"].tolist() == truth["timestamp"].tolist()
    np.testing.assert_allclose(df["load_mw"], truth["load_mw"], rtol=1e-9)
    np.testing.assert_allclose(df["temperature_c"], truth["temperature_c"], atol=1e-6)
    rep = meta["import_report"]
    whys = {c["role"]: f"{c['column']!r} ({c['why']})" for c in rep["inferred"]["columns"]}
    for role, text in chosen.items():
        assert text in whys[role], whys
        assert f"{role} ←" in printed
    for key, value in dialect.items():
        assert rep["dialect"][key] == value
    assert rep["inferred"]["temperature_unit"]["evidence"]["median"] is not None


def test_epoch_and_date_hour_formats_are_reported(truth, tmp_path):
    _, meta = import_table(epoch_s(truth, tmp_path))
    assert meta["import_report"]["inferred"]["timestamps"]["format"] == "epoch seconds"
    _, meta = import_table(date_hour(truth, tmp_path), tz="Europe/Berlin")
    assert meta["import_report"]["inferred"]["timestamps"]["convention"].startswith("hour ending")


ERROR_CASES = [
    pytest.param(fahrenheit, ["look like Fahrenheit", "median 3", "--temp-unit F"], id="unlabelled-fahrenheit"),
    pytest.param(kelvin, ["look like Kelvin", "median 27", "--temp-unit K"], id="unlabelled-kelvin"),
    pytest.param(two_loads, ["several columns could be the load", "'Demand', 'Load'", "--load-col"], id="two-loads"),
]


@pytest.mark.parametrize(("make", "expected"), ERROR_CASES)
def test_a_guess_that_could_be_wrong_is_exit_2(truth, tmp_path, capsys, make, expected):
    rc = main(["data", "import", str(make(truth, tmp_path)), "--out", str(tmp_path / "o.parquet")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1
    for text in expected:
        assert text in err, err


def test_flags_override_guesses(truth, tmp_path):
    src = two_loads(truth, tmp_path)
    df, meta = import_table(src, load_col="Load")
    assert meta["source_columns"]["load_mw"] == "Load"
    assert {"role": "load_mw", "column": "Load", "why": "--load-col"} in meta["import_report"]["inferred"]["columns"]


def test_bad_epoch_value_is_shown_whole(truth, tmp_path):
    secs = (truth["timestamp"].astype("int64") // 10**9).astype(str).tolist()
    secs[3] = "16725312OO"
    src = _csv(pd.DataFrame({"timestamp": secs, "load_mw": truth["load_mw"], "temperature_c": truth["temperature_c"]}),
               tmp_path / "bad.csv")
    with pytest.raises(Exception, match="'16725312OO'"):
        import_table(src)


def test_a_change_of_step_is_reported_and_aggregated_not_counted_as_gaps(tmp_path, quality_settings):
    """Hourly for 40 days, then 15-minute for 40: one hourly table, the change named, no gaps."""
    hourly, _ = generate(days=80, seed=6, country="DE")
    fine, _ = generate(days=80, freq="15min", seed=6, country="DE")
    cut = hourly["timestamp"].iloc[40 * 24]
    mixed = pd.concat([hourly[hourly["timestamp"] < cut], fine[fine["timestamp"] >= cut]])
    src = _csv(mixed.assign(timestamp=_iso(mixed["timestamp"]))[["timestamp", "load_mw", "temperature_c"]],
               tmp_path / "mixed.csv")

    df, meta = import_table(src, tz="Europe/Berlin")

    fc = meta["import_report"]["frequency_change"]
    assert [(c["from_step"], c["to_step"]) for c in fc["changes"]] == [("1h", "15min")]
    assert pd.Timestamp(fc["changes"][0]["at"]) == cut
    assert fc["target_step"] == "1h" and fc["rows_aggregated"] == 40 * 96
    assert meta["freq"] == "1h" and len(df) == 80 * 24
    expected = fine[fine["timestamp"] >= cut].set_index("timestamp")["load_mw"].resample("1h").mean()
    np.testing.assert_allclose(df.set_index("timestamp")["load_mw"][expected.index], expected, rtol=1e-9)
    result = check(df, meta, settings=quality_settings)
    assert result.report["checks"]["gaps"]["count"] == 0
    assert result.usable


def test_a_finer_resample_target_is_refused(tmp_path):
    hourly, _ = generate(days=3, seed=6)
    fine, _ = generate(days=3, freq="15min", seed=6)
    cut = hourly["timestamp"].iloc[48]
    mixed = pd.concat([hourly[hourly["timestamp"] < cut], fine[fine["timestamp"] >= cut]])
    src = _csv(mixed.assign(timestamp=_iso(mixed["timestamp"]))[["timestamp", "load_mw", "temperature_c"]],
               tmp_path / "mixed.csv")
    with pytest.raises(Exception, match="would invent values"):
        import_table(src, resample="30min")
