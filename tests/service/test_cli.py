"""``gridcast serve``: a thin wrapper; bad flags are one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

from service.cli import SERVICE, command


def test_command_is_bentoml_serve_of_the_gridcast_service():
    cmd = command("127.0.0.1", 3123)
    assert cmd[:4] == [sys.executable, "-m", "bentoml", "serve"] and SERVICE in cmd
    assert cmd[cmd.index("--port") + 1] == "3123" and cmd[cmd.index("--host") + 1] == "127.0.0.1"


def test_bad_port_is_one_line_and_exit_2():
    r = subprocess.run([sys.executable, "-m", "training.cli", "serve", "--port", "70000"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == "gridcast serve: error: port must be 1..65535, got 70000"
