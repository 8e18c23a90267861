"""A few seconds of real load: Locust (headless, every scenario) against ``bentoml serve``.

Quick models are trained into a private model store (``ensure_quick_models``, as
``make run`` does), the service starts as a subprocess exactly as ``gridcast serve``
starts it, and Locust runs the scenarios of ``load_tests/locustfile.py``. The test
reads Locust's own JSON statistics: zero failures (every answer was checked for status,
point count and ``lower <= mean <= upper``; an uncached LSTM request answered by the
fallback is a failure too) and a non-trivial number of requests per scenario.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from load_tests.common import ServiceProcess, free_port, locust_command, read_stats_json

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SCENARIOS = ("CachedForecastUser", "UncachedForecastUser", "BatchForecastUser", "MixedUser")


@pytest.fixture(scope="module")
def quick_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private BentoML home with the quick demo models (one LSTM epoch: speed, not skill)."""
    from gridcast.settings import Settings
    from training.train_cli import ensure_quick_models

    home = tmp_path_factory.mktemp("loadtest-bentoml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTOML_HOME", str(home))
        ensure_quick_models(Settings(lstm_epochs=1))
    return home


@pytest.fixture(scope="module")
def service(quick_store: Path, tmp_path_factory: pytest.TempPathFactory):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCAST_")}
    log = tmp_path_factory.mktemp("loadtest-service") / "service.log"
    svc = ServiceProcess(port=free_port(), env={**env, "BENTOML_HOME": str(quick_store),
                                                  "GRIDCAST_UI_MOUNT": "false"}, log_path=log)
    try:
        svc.start(timeout_s=240)
    except RuntimeError as exc:
        pytest.fail(f"{exc}; service log:\n{log.read_text()[-3000:]}")
    yield svc
    svc.stop()


def test_locust_smoke_has_no_failures(service: ServiceProcess, tmp_path: Path) -> None:
    prefix = tmp_path / "smoke"
    cmd = locust_command(host=service.url, users=8, spawn_rate=8, run_time="8s",
                         user_classes=SCENARIOS, csv_prefix=prefix, json_file=prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    stats = read_stats_json(prefix.with_name("smoke.json"))
    total = stats["Aggregated"]
    failures = prefix.with_name("smoke_failures.csv").read_text()
    assert total["failures"] == 0, f"failures:\n{failures}\n{done.stderr[-2000:]}"
    assert done.returncode == 0, done.stderr[-3000:]
    assert total["requests"] >= 20, total
    for name in ("POST /forecast [cached]", "POST /forecast [uncached lstm]", "POST /forecast_batch [2-8 uncached]"):
        assert name in stats and stats[name]["requests"] >= 2, (name, sorted(stats))


def test_locust_smoke_with_columnar_histories_and_overload_retry_after(service: ServiceProcess, tmp_path: Path) -> None:
    """The columnar payload and the overload scenario (which honours Retry-After) run clean too."""
    prefix = tmp_path / "columnar"
    cmd = locust_command(host=service.url, users=8, spawn_rate=8, run_time="6s",
                         user_classes=("UncachedForecastUser", "OverloadUser"), csv_prefix=prefix, json_file=prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")} | {"LOADTEST_PAYLOAD": "columnar"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    stats = read_stats_json(prefix.with_name("columnar.json"))
    assert stats["Aggregated"]["failures"] == 0, prefix.with_name("columnar_failures.csv").read_text()
    assert done.returncode == 0, done.stderr[-3000:]
    assert stats["POST /forecast [uncached lstm]"]["requests"] >= 4, sorted(stats)


def test_the_model_only_benchmark_measures_the_served_lstm(quick_store: Path) -> None:
    """load_tests/bench_model.py (the model-only limits in BENCHMARKS.md) runs on a served store."""
    import json
    import sys

    from load_tests.common import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCAST_")} | {"BENTOML_HOME": str(quick_store)}
    done = subprocess.run([sys.executable, str(ROOT / "load_tests" / "bench_model.py"), "--batch", "8", "--repeats", "2"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    limits = json.loads(done.stdout.strip().splitlines()[-1])
    # timings on a shared machine (two repeats) bound nothing: that both were measured is the check
    assert limits["batch"] == 8 and limits["model"].startswith("gridcast-lstm-"), limits
    assert limits["network_forecasts_per_s"] > 0 and limits["predict_series_forecasts_per_s"] > 0, limits
