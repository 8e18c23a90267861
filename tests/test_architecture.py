"""The architecture of docs/architecture.md, kept true by the build.

* The import contracts in ``.importlinter`` (the core imports no adapter; the adapters
  are independent, except that the service mounts the UI; no import cycle), checked by
  import-linter's ``lint-imports``: a forbidden import fails this test.
* No Python file of the packages is longer than :data:`MAX_LINES` unless it says why
  near its top with a line ``# one piece: <reason>``.
* The Bento carries only what the service runs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gridcast", "service", "streaming", "ui", "training")
MAX_LINES = 500
#: a file may run longer when one of its first lines says why
REASON = re.compile(r"^# one piece: \S")
REASON_WITHIN = 40


def lint_imports() -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "lint-imports"
    return subprocess.run([str(exe), str(ROOT / ".importlinter"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    result = lint_imports()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _sizes() -> dict[str, tuple[int, bool]]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            reasoned = any(REASON.match(line) for line in lines[:REASON_WITHIN])
            out[str(path.relative_to(ROOT))] = (len(lines), reasoned)
    return out


def test_no_file_over_the_limit_without_a_reason():
    sizes = _sizes()
    over = sorted(p for p, (n, reasoned) in sizes.items() if n > MAX_LINES and not reasoned)
    assert not over, (f"over {MAX_LINES} lines without a '# one piece: <reason>' line near the top: "
                      + ", ".join(f"{p} ({sizes[p][0]})" for p in over))


def test_the_bento_carries_only_what_the_service_runs():
    text = (ROOT / "bentofile.yaml").read_text()
    block = text.split("include:", 1)[1].split("exclude:", 1)[0]
    tops = {line.strip().strip("-").strip().strip('"').split("/")[0] for line in block.splitlines() if line.strip()}
    assert tops == {"gridcast", "service", "ui"}
