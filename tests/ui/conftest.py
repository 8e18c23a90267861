"""UI fixtures: a real ``bentoml serve`` of the gridcast service on quick models.

The UI is a client of the service, so its tests run against the real thing: quick
models trained by :func:`training.store.ensure_quick_models` into a private
``BENTOML_HOME``, served by a ``bentoml serve`` subprocess on a free port (with the UI
mounted at ``/ui``). One service per test session; it is stopped at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 240


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCAST_")}
    env.update(BENTOML_HOME=str(home), GRADIO_ANALYTICS_ENABLED="False", BENTOML_DO_NOT_TRACK="True")
    return env


@pytest.fixture(scope="session")
def ui_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BentoML home holding the quick demo models ``make run`` would train."""
    from training.settings import Settings
    from training.store import ensure_quick_models

    home = tmp_path_factory.mktemp("ui-bentoml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTOML_HOME", str(home))
        for name in [n for n in os.environ if n.startswith("GRIDCAST_")]:
            mp.delenv(name)
        # fewer epochs than the quick default: the UI tests need served models, not good ones
        ensure_quick_models(Settings(lstm_epochs=2))
    return home


@pytest.fixture(scope="session")
def service_url(ui_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running ``bentoml serve`` on the quick models (UI mounted at /ui)."""
    from service.cli import command

    port = free_port()
    env = _clean_env(ui_home)
    env.update(GRIDCAST_PORT=str(port), GRIDCAST_HOST="127.0.0.1", GRIDCAST_UI_REFRESH_S="5")
    log = tmp_path_factory.mktemp("ui-service") / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(command("127.0.0.1", port), cwd=REPO, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bentoml serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"service not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@pytest.fixture
def client(service_url: str):
    from ui.client import ServiceClient

    return ServiceClient(service_url)


@pytest.fixture
def ui_settings():
    from training.settings import Settings

    return Settings()
