"""``gridcast data ...`` through the real console entry: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from training.cli import main
from gridcast.synthetic import generate
from gridcast.schema import read_table


@pytest.fixture
def load_csv(tmp_path: Path) -> Path:
    """A small, valid load file in UTC with a Celsius temperature column."""
    df, _ = generate(days=3, seed=1)
    path = tmp_path / "load.csv"
    df.rename(columns={"timestamp": "Time", "load_mw": "Demand", "temperature_c": "Temp"}).assign(
        Time=df["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )[["Time", "Demand", "Temp"]].to_csv(path, index=False)
    return path


def _bad_timestamp(tmp_path: Path, load_csv: Path) -> Path:
    raw = pd.read_csv(load_csv, dtype=str)
    raw.loc[6, "Time"] = "2023-02-30T06:00:00Z"
    path = tmp_path / "bad_time.csv"
    raw.to_csv(path, index=False)
    return path


def _kelvin(tmp_path: Path, load_csv: Path) -> Path:
    raw = pd.read_csv(load_csv)
    path = tmp_path / "kelvin.csv"
    raw.assign(Temp=raw["Temp"] + 273.15).to_csv(path, index=False)
    return path


def _naive(tmp_path: Path, load_csv: Path) -> Path:
    raw = pd.read_csv(load_csv)
    path = tmp_path / "naive.csv"
    raw.assign(Time=raw["Time"].str.replace("T", " ").str.rstrip("Z")).to_csv(path, index=False)
    return path


def _no_temperature(tmp_path: Path, load_csv: Path) -> Path:
    raw = pd.read_csv(load_csv)
    path = tmp_path / "no_temp.csv"
    raw.drop(columns=["Temp"]).assign(Wind=3.0).to_csv(path, index=False)
    return path


def _not_a_zip(tmp_path: Path, load_csv: Path) -> Path:
    path = tmp_path / "load.zip"
    path.write_bytes(b"this is not a zip archive")
    return path


def _text_in_load(tmp_path: Path, load_csv: Path) -> Path:
    raw = pd.read_csv(load_csv, dtype=str)
    raw.loc[2, "Demand"] = "n/a MW"
    path = tmp_path / "text.csv"
    raw.to_csv(path, index=False)
    return path


BASE = ["--time-col", "Time", "--load-col", "Demand", "--temp-col", "Temp"]

USER_ERRORS = [
    pytest.param(lambda tmp, csv: tmp / "nope.csv", BASE, ["not found", "nope.csv"], id="missing-file"),
    pytest.param(lambda tmp, csv: csv, ["--time-col", "Time", "--load-col", "MW", "--temp-col", "Temp"],
                 ["column 'MW' not in", "the columns are: 'Time', 'Demand', 'Temp'"], id="missing-column"),
    pytest.param(_bad_timestamp, BASE, ["cannot parse timestamp", "data row 7", "'2023-02-30T06:00:00Z'"],
                 id="unparseable-timestamp"),
    pytest.param(_kelvin, BASE, ["median 2", "look like Kelvin", "--temp-unit K"], id="kelvin-as-celsius"),
    pytest.param(_naive, BASE, ["no UTC offset", "--tz"], id="naive-without-tz"),
    pytest.param(lambda tmp, csv: csv, [*BASE, "--tz", "Mars/Olympus"], ["unknown time zone 'Mars/Olympus'"],
                 id="unknown-tz"),
    pytest.param(lambda tmp, csv: csv, ["--time-col", "Time", "--load-col", "Demand", "--weather", str(Path("/nonexistent/w.csv")),
                                        "--weather-temp-col", "t"], ["weather file not found"], id="missing-weather-file"),
    pytest.param(_no_temperature, ["--time-col", "Time", "--load-col", "Demand"],
                 ["no temperature column found", "'Time', 'Demand', 'Wind'", "--temp-col"], id="no-temperature"),
    pytest.param(_not_a_zip, BASE, ["is not a readable zip file"], id="corrupt-zip"),
    pytest.param(_text_in_load, BASE, ["column 'Demand'", "not numeric", "data row 3", "'n/a MW'"],
                 id="non-numeric-load"),
]


@pytest.mark.parametrize(("make_src", "flags", "expected"), USER_ERRORS)
def test_import_user_errors_are_one_line_and_exit_2(tmp_path, load_csv, capsys, make_src, flags, expected):
    src = make_src(tmp_path, load_csv)
    rc = main(["data", "import", str(src), "--out", str(tmp_path / "out.parquet"), *flags])

    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("gridcast data: error: "), err
    for text in expected:
        assert text in err
    assert not (tmp_path / "out.parquet").exists()


def test_user_error_through_the_installed_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "training.cli", "data", "import", str(tmp_path / "missing.csv"),
         "--out", str(tmp_path / "x.parquet")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"gridcast data: error: load file not found: {tmp_path / 'missing.csv'}"]


def test_check_of_a_missing_file_is_a_user_error(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "none.parquet")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_import_writes_the_canonical_table_with_sources(tmp_path, load_csv, capsys):
    out = tmp_path / "out.parquet"
    rc = main(["data", "import", str(load_csv), "--out", str(out), *BASE, "--region", "VIC",
               "--tz", "Australia/Melbourne"])

    assert rc == 0
    df, meta = read_table(out)
    assert len(df) == 72 and set(df["region"]) == {"VIC"}
    assert meta["freq"] == "1h" and meta["synthetic"] is False and meta["timezone"] == "Australia/Melbourne"
    assert meta["sources"] == {"load_mw": str(load_csv), "temperature_c": str(load_csv)}
    assert "72" in capsys.readouterr().out


def test_sample_writes_marked_synthetic_data(tmp_path, capsys):
    out = tmp_path / "s.parquet"
    assert main(["data", "sample", "--out", str(out), "--days", "4", "--regions", "2", "--freq", "30min",
                 "--seed", "3"]) == 0

    df, meta = read_table(out)
    assert meta["synthetic"] is True and meta["freq"] == "30min"
    assert len(df) == 4 * 48 * 2
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize("flags", [["--freq", "7min"], ["--freq", "hourly"], ["--days", "0"],
                                   ["--days", "3", "--faults"]],
                         ids=["freq-not-dividing-a-day", "freq-garbage", "zero-days", "faults-without-room"])
def test_sample_bad_arguments_exit_2(tmp_path, capsys, flags):
    assert main(["data", "sample", "--out", str(tmp_path / "s.parquet"), *flags]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_plot_writes_pngs(tmp_path, capsys):
    src = tmp_path / "s.parquet"
    main(["data", "sample", "--out", str(src), "--days", "15", "--seed", "2"])
    rc = main(["data", "plot", str(src), "--out", str(tmp_path / "plots")])

    assert rc == 0
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["region-1_daily_profile.png", "region-1_load_vs_temperature.png",
                    "region-1_monthly_boxplots.png", "region-1_series_flags.png"]
    assert "wrote 4 plot(s)" in capsys.readouterr().out


def test_plot_rejects_a_report_that_is_not_json(tmp_path, capsys):
    src = tmp_path / "s.parquet"
    main(["data", "sample", "--out", str(src), "--days", "3"])
    bad = tmp_path / "report.json"
    bad.write_text("{nope")
    assert main(["data", "plot", str(src), "--out", str(tmp_path / "p"), "--report", str(bad)]) == 2
    assert "is not a JSON report" in capsys.readouterr().err


def test_sample_faults_check_reports_injected_counts_and_plots_flags(tmp_path, capsys):
    """The acceptance path, as `make demo-data` runs it: sample --faults → check → plot."""
    raw, clean, report = tmp_path / "raw.parquet", tmp_path / "clean.parquet", tmp_path / "q.json"
    assert main(["data", "sample", "--out", str(raw), "--days", "730", "--regions", "2", "--seed", "42", "--faults"]) == 0
    _, meta = read_table(raw)
    injected = meta["faults"]
    assert injected, "no faults recorded"

    rc = main(["data", "check", str(raw), "--report", str(report), "--clean-out", str(clean)])

    assert rc == 0
    checks = json.loads(report.read_text())["checks"]
    for name, fault in injected.items():
        assert checks[name]["count"] == fault["count"], name
    df, clean_meta = read_table(clean)
    assert not df.duplicated(["region", "timestamp"]).any()
    step = pd.Timedelta(clean_meta["freq"])
    for _, part in df.groupby("region"):
        assert (part["timestamp"].diff().dropna() == step).all()
    assert clean_meta["quality_report"]["checks"].keys() >= injected.keys()
    assert main(["data", "plot", str(clean), "--out", str(tmp_path / "plots")]) == 0
    capsys.readouterr()


def test_check_exits_1_and_says_why_when_data_is_too_short(tmp_path, capsys):
    src = tmp_path / "short.parquet"
    main(["data", "sample", "--out", str(src), "--days", "3"])
    capsys.readouterr()

    rc = main(["data", "check", str(src)])

    err = capsys.readouterr().err
    assert rc == 1
    assert "cannot be used" in err
