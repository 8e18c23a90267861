"""Helpers shared by test packages that run the real service or real Redis.

One way to start ``bentoml serve`` (the command ``gridcast serve`` runs), wait for
``/readyz`` and stop the whole process group, so the service, streaming and UI
suites cannot drift apart in how they do it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_up() -> str:
    """The project's Redis on 127.0.0.1:6379 (started by ``scripts/redis.sh`` if needed)."""
    subprocess.run(["bash", str(ROOT / "scripts/redis.sh"), "up"], check=True, capture_output=True)
    return REDIS_URL


@contextlib.contextmanager
def served_service(env: Mapping[str, str], log: Path, *, ready_timeout_s: float = 180) -> Iterator[str]:
    """Run ``bentoml serve`` on a free port with ``env`` until the block ends; yields its URL.

    Fails the test with the log's tail when the process exits or is not ready in time.
    The process group gets SIGTERM on the way out (SIGKILL after 30 s).
    """
    from service.cli import command

    port = free_port()
    with log.open("wb") as sink:
        proc = subprocess.Popen(command("127.0.0.1", port), cwd=ROOT, env=dict(env), stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bentoml serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"service not ready after {ready_timeout_s:.0f} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
