"""docker-compose.yml is a deployment a user can start, consistent with scripts/ and the settings.

Validated by podman-compose itself (``--dry-run config``: parsed, merged and
interpolated as ``podman-compose up`` would, without podman or any image), then
checked against ``gridcast/settings.py``, ``scripts/kafka.sh``, ``scripts/redis.sh``,
the bridge's topic retention, the bridge image (``streaming/Containerfile``) and the
command that the bridge containers run from it.
"""

from __future__ import annotations

import json
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


def test_the_service_runs_the_bento_image_and_the_bridges_the_bridge_image(services):
    assert services["service"]["image"] == "gridcast:latest"
    assert services["bridge"]["image"] == "gridcast-bridge:latest"  # make bridge-image tags it
    chosen = config(GRIDCAST_IMAGE="localhost/gridcast:abc123", GRIDCAST_BRIDGE_IMAGE="localhost/gridcast-bridge:abc123",
                    GRIDCAST_BRIDGES="3")["services"]
    assert chosen["service"]["image"] == "localhost/gridcast:abc123"
    assert chosen["bridge"]["image"] == "localhost/gridcast-bridge:abc123"
    assert int(chosen["bridge"]["deploy"]["replicas"]) == 3
    assert services["service"]["command"] == ["serve"]  # the Bento entrypoint's `bentoml serve`
    # the bridge image sets the working directory and the entrypoint; compose only names the command
    assert "entrypoint" not in services["bridge"] and "working_dir" not in services["bridge"]


def containerfile() -> dict[str, list[str]]:
    """streaming/Containerfile's instructions: keyword -> its arguments, in order (continuations joined)."""
    text = (ROOT / "streaming" / "Containerfile").read_text().replace("\\\n", " ")
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.setdefault(keyword.upper(), []).append(rest.strip())
    return out


def test_the_bridge_image_is_the_bento_image_plus_streaming_and_the_locked_aiokafka():
    from bentoml._internal.bento.bento import BENTO_PROJECT_DIR_NAME
    from bentoml._internal.container.generate import BENTO_PATH, BENTO_USER

    cf = containerfile()
    # layered on the Bento image, which the build names
    assert cf["FROM"] == ["${GRIDCAST_IMAGE}"]
    assert any(a.startswith("GRIDCAST_IMAGE") for a in cf["ARG"])
    # streaming/ lands next to the Bento's source (where BentoML puts it), owned by its user
    src = f"{BENTO_PATH}/{BENTO_PROJECT_DIR_NAME}"
    assert f"BENTO_SRC={src}" in cf["ARG"], f"the Bento's source is at {src} in BentoML's images"
    assert f"--chown={BENTO_USER}:{BENTO_USER} streaming/ ${{BENTO_SRC}}/streaming/" in cf["COPY"]
    assert cf["WORKDIR"] == ["${BENTO_SRC}"] and "PYTHONPATH=${BENTO_SRC}" in cf["ENV"]
    assert cf["USER"][-1] == BENTO_USER  # it runs as the Bento image does, not as root
    # the packages: the generated pins (tests/test_lock.py: equal to the lock), into the Bento's venv
    template = (Path(__import__("bentoml").__file__).parent
                / "_internal/container/frontend/dockerfile/templates/base_v2.j2").read_text()
    assert "ENV VIRTUAL_ENV=/app/.venv" in template, "BentoML's images no longer keep their packages in /app/.venv"
    assert "requirements/bridge.txt /tmp/bridge.txt" in cf["COPY"]
    assert any("uv pip install --python /app/.venv/bin/python" in r and "-r /tmp/bridge.txt" in r for r in cf["RUN"])


def test_the_bridge_command_runs_from_the_bridge_image_source_tree(tmp_path):
    """The image's source tree (the Bento's include globs + streaming/), no entry points, no training/:
    the compose command, given to the image's entrypoint, starts `gridcast stream`."""
    services = config()["services"]
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    for pattern in [*bentofile["include"], "streaming/**/*.py"]:
        for path in ROOT.glob(pattern):
            if "__pycache__" not in path.parts and path.is_file():
                dest = tmp_path / path.relative_to(ROOT)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(path.read_bytes())
    assert not (tmp_path / "training").exists()
    (entrypoint,) = containerfile()["ENTRYPOINT"]
    python, flag, module = json.loads(entrypoint)
    assert (python, flag) == ("python", "-m")
    # as in the image: the source directory first on sys.path, the gridcast/training packages and
    # their entry points not installed (blocked here, since this venv has them)
    run = f"""
import importlib.metadata, runpy, sys
sys.path.insert(0, {str(tmp_path)!r})
for name in ("training", "load_tests"):
    sys.modules[name] = None
importlib.metadata.entry_points = lambda **kw: []
import streaming.bridge, streaming.replay  # the image build's import check
import gridcast.cli
for m in (streaming.bridge, gridcast.cli):
    assert m.__file__.startswith({str(tmp_path)!r}), m.__file__
sys.argv = [{module!r}, *sys.argv[1:]]
runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
"""
    for args in ([*services["bridge"]["command"], "--help"], ["--help"]):
        result = subprocess.run([sys.executable, "-c", run, *args], capture_output=True, text=True,
                                cwd=tmp_path, timeout=180, env={**os.environ, "PYTHONPATH": str(tmp_path)})
        assert result.returncode == 0, result.stderr
        assert "usage: gridcast" in result.stdout, result.stdout
    assert "Kafka" in result.stdout and " stream " in result.stdout and " replay " in result.stdout
    # and `gridcast stream` of the installed script is the same command
    scripts = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^gridcast\s*=\s*"gridcast\.cli:main"', scripts, re.M), "the gridcast script is not gridcast.cli:main"
    assert re.search(r'^streaming\s*=\s*"streaming\.cli:register"', scripts, re.M)


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
    for topic in ("topic_observations", "topic_requests", "topic_forecasts", "topic_dead_letter", "topic_weather"):
        assert getattr(defaults, topic) in created
    assert created.count(f"--partitions {defaults.topic_partitions}") == 3
    # ... with the configs the bridge would give them (streaming.restore.topic_configs)
    from streaming.restore import topic_configs

    for topic, configs in topic_configs(defaults).items():
        command = created.split(f"--topic {topic}", 1)[1].split("--topic", 1)[0]
        for key, value in configs.items():
            if key != "retention.ms":  # the observations' retention is checked against the settings above
                assert f"--config {key}={value}" in command, (topic, key)


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
    from streaming.restore import retention_ms, window_s

    s = Settings()
    created = services["kafka-topics"]["command"][0]
    retention = int(re.search(r"gridcast\.observations[^\n]*\n?[^\n]*--config retention\.ms=(\d+)", created).group(1))
    assert retention == retention_ms(s) and retention >= (window_s(s) + s.max_future_s) * 1000
    broker_hours = int(env_of(services["kafka"])["KAFKA_LOG_RETENTION_HOURS"])
    script_hours = int(re.search(r"^log\.retention\.hours=(\d+)", (ROOT / "scripts/kafka.sh").read_text(),
                                 re.M).group(1))
    for hours in (broker_hours, script_hours):  # topics created by a producer get the broker default
        assert hours * 3600 * 1000 >= retention_ms(s)
