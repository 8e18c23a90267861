"""The ``gridcast`` composition root: commands come from entry points, the core names no adapter."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from gridcast import cli

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("settings", "data", "train", "backtest", "collect", "serve", "stream", "replay", "ui")


def test_every_declared_command_group_loads():
    names = [ep.name for ep in cli.command_entry_points()]
    assert names == sorted(names)
    assert {"data", "serve", "streaming", "ui", "train"} <= set(names)
    for ep in cli.command_entry_points():
        assert callable(ep.load()), ep


def test_help_lists_every_command():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(COMMANDS) <= set(sub.choices)


def test_the_core_names_no_adapter():
    text = (ROOT / "gridcast" / "cli.py").read_text()
    assert not re.search(r"\b(training|service|streaming|ui)\.\w", text), "gridcast/cli.py names an adapter module"
    assert "import_module" not in text


def test_console_script_and_old_module_path_run_the_same_root():
    for cmd in ([str(Path(sys.executable).parent / "gridcast"), "--help"], [sys.executable, "-m", "training.cli", "--help"]):
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 0, r.stderr
        assert all(c in r.stdout for c in COMMANDS)
