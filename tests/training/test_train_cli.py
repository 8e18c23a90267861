"""``gridcast train``: quick models into an isolated BentoML store, checked from outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gridcast import store
from training.cli import main
from training.data.synthetic import generate
from gridcast.schema import write_table


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    df, meta = generate(days=90, regions=2, seed=5)
    return write_table(df, tmp_path_factory.mktemp("train") / "sample.parquet", meta)


@pytest.mark.slow
def test_train_quick_writes_served_models_with_metadata(bento_home, data_path, capsys) -> None:
    rc = main(["train", "--data", str(data_path), "--models", "naive,lstm", "--quick", "--regions", "region-1"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "MAPE" in out and out.count("promoted") >= 2

    served = {(m.region, m.alias): m for m in store.served_models()}
    assert set(served) == {("region-1", "naive"), ("region-1", "lstm")}
    meta = served[("region-1", "lstm")].metadata
    for key in ("train_start", "train_end", "data_hash", "features", "params", "versions", "validation"):
        assert meta[key], key
    assert meta["validation"]["mape"] > 0 and 0 <= meta["validation"]["coverage_80"] <= 1
    # error by lead (hourly, day-ahead: 24 leads) and by local hour of day, JSON as stored
    by_lead, by_hour = meta["validation"]["by_lead"], meta["validation"]["by_hour"]
    assert by_lead["lead"] == list(range(1, 25)) and all(m > 0 for m in by_lead["mape"])
    assert len(by_lead["coverage_90"]) == 24 and by_hour["tz"] == meta["timezone"] == "Asia/Ho_Chi_Minh"
    assert len(by_hour["mape"]) == 24 and sum(by_hour["n"]) == meta["validation"]["n_points"]
    assert meta["versions"]["tensorflow-cpu"] and meta["params"]["quick"] is True
    assert meta["features"]["horizon_steps"] == 168

    # `bentoml models list` (a separate process reading the same home) shows them
    env = {**os.environ, "BENTOML_HOME": str(bento_home)}
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("bentoml")), "models", "list", "-o", "json"],
        capture_output=True, text=True, check=True, env=env, timeout=120,
    )
    names = {row["tag"].split(":")[0] for row in json.loads(listed.stdout)}
    assert {"gridcast-lstm-region-1", "gridcast-naive-region-1", "gridcast-served"} <= names

    # the served LSTM loads and forecasts
    fc = store.load_forecaster(served[("region-1", "lstm")].tag).predict(24)
    assert len(fc) == 24 and (fc["lo-80"] <= fc["mean"]).all()


def test_retraining_with_no_improvement_keeps_the_served_model(bento_home, data_path, capsys) -> None:
    assert main(["train", "--data", str(data_path), "--models", "naive", "--quick"]) == 0
    first = {m.region: m.tag for m in store.served_models()}
    assert set(first) == {"region-1", "region-2"}
    assert main(["train", "--data", str(data_path), "--models", "naive", "--quick"]) == 0
    assert "not promoted" in capsys.readouterr().out
    assert {m.region: m.tag for m in store.served_models()} == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--models", "lstm,prophet"], "unknown model(s) prophet"),
        (["--regions", "atlantis"], "region(s) atlantis not in the data"),
        (["--val-days", "80"], "too few"),
    ],
    ids=["unknown-model", "unknown-region", "too-little-data"],
)
def test_bad_input_is_one_line_and_exit_2(bento_home, data_path, capsys, args, message) -> None:
    assert main(["train", "--data", str(data_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_file_is_exit_2(bento_home, tmp_path, capsys) -> None:
    assert main(["train", "--data", str(tmp_path / "nope.parquet"), "--models", "naive"]) == 2
    assert "file not found" in capsys.readouterr().err


def test_data_is_required_without_ensure_quick(bento_home, capsys) -> None:
    assert main(["train", "--models", "naive"]) == 2
    assert "--data is required" in capsys.readouterr().err


@pytest.mark.slow
def test_ensure_quick_serves_demo_models_once(bento_home, capsys) -> None:
    assert main(["train", "--ensure-quick"]) == 0
    served = {(m.region, m.alias) for m in store.served_models()}
    assert served == {(r, a) for r in ("region-1", "region-2") for a in ("naive", "sarimax", "lstm")}
    tags = store.served_tags()
    # a second call finds served models and trains nothing
    assert main(["train", "--ensure-quick"]) == 0
    assert store.served_tags() == tags
    assert capsys.readouterr().out.count("served: ") == 12


def test_trained_models_are_built_from_the_settings_as_the_backtest_builds_them() -> None:
    """One factory: a user's SARIMAX windows reach ``gridcast train``'s models, not only the backtest's."""
    from gridcast.settings import Settings
    from training.backtest_cli import model_factories
    from training.train_cli import _make

    settings = Settings(sarimax_window_weeks=5, sarimax_long_window_weeks=0, lstm_epochs=3)
    trained = _make("sarimax", quick=False, settings=settings, country="ES", tz="Europe/Madrid")
    backtested = model_factories(["sarimax"], settings=settings, country="ES", tz="Europe/Madrid")["sarimax"]()
    assert trained.params["window_weeks"] == backtested.params["window_weeks"] == 5
    assert trained.params["long_window_weeks"] == backtested.params["long_window_weeks"] == 0
    assert trained.params == backtested.params
    ensemble = _make("ensemble", quick=False, settings=settings, country="ES", tz="Europe/Madrid")
    assert ensemble.member_params["sarimax"]["long_window_weeks"] == 0
    assert _make("lstm", quick=False, settings=settings, country=None, tz=None).params["epochs"] == 3
