"""UI fixtures: a real ``bentoml serve`` of the gridcast service on quick models.

The UI is a client of the service, so its tests run against the real thing: quick
models trained by :func:`training.train_cli.ensure_quick_models` into a private
``BENTOML_HOME``, served by a ``bentoml serve`` subprocess on a free port (with the UI
mounted at ``/ui``). One service per test session; it is stopped at the end.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import served_service

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 240


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDCAST_")}
    env.update(BENTOML_HOME=str(home), GRADIO_ANALYTICS_ENABLED="False", BENTOML_DO_NOT_TRACK="True")
    return env


@pytest.fixture(scope="session")
def ui_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BentoML home holding the quick demo models ``make run`` would train."""
    from gridcast.settings import Settings
    from training.train_cli import ensure_quick_models

    home = tmp_path_factory.mktemp("ui-bentoml")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENTOML_HOME", str(home))
        for name in [n for n in os.environ if n.startswith("GRIDCAST_")]:
            mp.delenv(name)
        # fewer epochs than the quick default: the UI tests need served models, not good ones
        ensure_quick_models(Settings(lstm_epochs=2))
    return home


@contextlib.contextmanager
def running_service(home: Path, log: Path, **env_extra: str) -> Iterator[str]:
    """``bentoml serve`` (the command ``gridcast serve`` runs) on a free port until the block ends."""
    env = _clean_env(home)
    env.update(GRIDCAST_HOST="127.0.0.1", GRIDCAST_UI_REFRESH_S="5", **env_extra)
    with served_service(env, log, ready_timeout_s=READY_TIMEOUT_S) as url:
        yield url


@pytest.fixture(scope="session")
def service_url(ui_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A served gridcast on embedded defaults (in-process state and cache), as ``make run`` starts it."""
    with running_service(ui_home, tmp_path_factory.mktemp("ui-service") / "serve.log") as url:
        yield url


@pytest.fixture
def client(service_url: str):
    from ui.client import ServiceClient

    return ServiceClient(service_url)


@pytest.fixture
def ui_settings():
    from gridcast.settings import Settings

    return Settings()


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_service(ui_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A served gridcast whose state and cache are the real Redis (unique key prefix): (url, prefix)."""
    import redis

    prefix = f"gridcast-ui-test-{uuid.uuid4().hex[:8]}"
    conn = redis.Redis.from_url(REDIS_URL)
    conn.ping()  # make services-up starts it; a clear failure here beats a confusing one later
    log = tmp_path_factory.mktemp("ui-redis-service") / "serve.log"
    try:
        with running_service(ui_home, log, GRIDCAST_REDIS_URL=REDIS_URL, GRIDCAST_REDIS_KEY_PREFIX=prefix) as url:
            yield url, prefix
    finally:
        keys = list(conn.scan_iter(f"{prefix}*"))
        if keys:
            conn.delete(*keys)
        conn.close()
