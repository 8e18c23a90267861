"""docker-compose.yml is a deployment a user can start, consistent with scripts/ and the settings.

Validated by podman-compose itself (``--dry-run config``: parsed, merged and
interpolated as ``podman-compose up`` would, without podman or any image), then
checked against ``gridcast/settings.py``, ``scripts/kafka.sh``, ``scripts/redis.sh``,
the bridge's topic retention and the CLI that the bridge containers run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gridcast.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
PODMAN_COMPOSE = Path(sys.executable).parent / "podman-compose"


def config(**env: str) -> dict:
    """The compose file as podman-compose resolves it (``--dry-run``: no podman needed)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCAST_")}
    result = subprocess.run(
        [str(PODMAN_COMPOSE), "--dry-run", "-f", str(COMPOSE), "config"],
        env={**clean, **env}, capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def services() -> dict:
    return config()["services"]


def env_of(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def test_it_runs_kafka_redis_the_service_and_bridges_each_with_a_health_check(services):
    assert {"kafka", "kafka-topics", "redis", "service", "bridge"} <= set(services)
    for name in ("kafka", "redis", "service", "bridge"):
        test = services[name]["healthcheck"]["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    assert int(services["bridge"]["deploy"]["replicas"]) >= 2  # more than one bridge by default
    needs = services["bridge"]["depends_on"]
    assert {k: v["condition"] for k, v in needs.items()} == {
        "kafka": "service_healthy", "redis": "service_healthy", "service": "service_healthy",
        "kafka-topics": "service_completed_successfully"}


def test_the_service_and_the_bridges_run_the_container_image(services):
    assert services["service"]["image"] == services["bridge"]["image"] == "gridcast:latest"
    chosen = config(GRIDCAST_IMAGE="localhost/gridcast:abc123", GRIDCAST_BRIDGES="3")["services"]
    assert chosen["service"]["image"] == chosen["bridge"]["image"] == "localhost/gridcast:abc123"
    assert int(chosen["bridge"]["deploy"]["replicas"]) == 3
    assert services["service"]["command"] == ["serve"]  # the Bento entrypoint's `bentoml serve`


def test_the_bridge_runs_gridcast_stream_through_the_cli():
    services = config()["services"]
    command = services["bridge"]["command"]
    assert command[:3] == ["python", "-m", "training.cli"] and command[3:] == ["stream"]
    # the module is the `gridcast` console script's, and `stream` is its bridge command
    scripts = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^gridcast\s*=\s*"gridcast\.cli:main"', scripts, re.M), "the gridcast script is not gridcast.cli:main"
    help_text = subprocess.run([sys.executable, "-m", "training.cli", "stream", "--help"], capture_output=True,
                               text=True, cwd=ROOT, timeout=120)
    assert help_text.returncode == 0 and "Kafka" in help_text.stdout, help_text.stderr


def test_every_gridcast_setting_named_exists_and_matches_the_defaults(services):
    defaults = Settings()
    for name in ("service", "bridge"):
        env = env_of(services[name])
        for key, value in env.items():
            if not key.startswith("GRIDCAST_"):
                continue
            field = key.removeprefix("GRIDCAST_").lower()
            assert field in Settings.model_fields, f"{name}: {key} is no setting"
            Settings(**{field: value})  # a valid value for it
        for topic in ("topic_observations", "topic_requests", "topic_forecasts", "topic_dead_letter"):
            assert env[f"GRIDCAST_{topic.upper()}"] == getattr(defaults, topic), (name, topic)
        assert env["GRIDCAST_TOPIC_PARTITIONS"] == str(defaults.topic_partitions)
    assert env_of(services["bridge"])["GRIDCAST_FORECAST_VIA"] in ("inprocess", "http", "naive")
    assert env_of(services["bridge"])["GRIDCAST_SERVICE_URL"] == f"http://service:{defaults.port}"
    assert env_of(services["bridge"])["GRIDCAST_KAFKA_BOOTSTRAP"] in env_of(services["kafka"])[
        "KAFKA_ADVERTISED_LISTENERS"]
    # the topics the init job creates are the settings' topics, with their partitions
    created = services["kafka-topics"]["command"][0]
    for topic in ("topic_observations", "topic_requests", "topic_forecasts", "topic_dead_letter"):
        assert getattr(defaults, topic) in created
    assert created.count(f"--partitions {defaults.topic_partitions}") == 2


def test_ports_match_the_scripts_and_settings(services):
    defaults = Settings()
    kafka_port = re.search(r'PORT="\$\{KAFKA_PORT:-(\d+)\}"', (ROOT / "scripts/kafka.sh").read_text()).group(1)
    redis_port = re.search(r'PORT="\$\{REDIS_PORT:-(\d+)\}"', (ROOT / "scripts/redis.sh").read_text()).group(1)
    assert defaults.kafka_bootstrap == f"127.0.0.1:{kafka_port}"
    assert f"127.0.0.1:{kafka_port}:{kafka_port}" in services["kafka"]["ports"]
    assert f"127.0.0.1:{redis_port}:{redis_port}" in services["redis"]["ports"]
    (published,) = services["service"]["ports"]
    assert published.endswith(f":{defaults.port}") and published.startswith(f"127.0.0.1:{defaults.port}-")


def test_redis_persists_with_the_append_only_file_like_scripts_redis_sh(services):
    command = services["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])  # the AOF outlives the container
    script = (ROOT / "scripts/redis.sh").read_text()
    assert "--appendonly yes" in script


def test_observation_retention_covers_the_history_window(services):
    from streaming.bridge import retention_ms, window_s

    s = Settings()
    created = services["kafka-topics"]["command"][0]
    retention = int(re.search(r"gridcast\.observations[^\n]*\n?[^\n]*--config retention\.ms=(\d+)", created).group(1))
    assert retention == retention_ms(s) and retention >= (window_s(s) + s.max_future_s) * 1000
    broker_hours = int(env_of(services["kafka"])["KAFKA_LOG_RETENTION_HOURS"])
    script_hours = int(re.search(r"^log\.retention\.hours=(\d+)", (ROOT / "scripts/kafka.sh").read_text(),
                                 re.M).group(1))
    for hours in (broker_hours, script_hours):  # topics created by a producer get the broker default
        assert hours * 3600 * 1000 >= retention_ms(s)
