"""The lock is the one source of package versions: the venv, the Bento, the bridge image and pyproject agree.

A fresh machine once resolved bentoml 1.4.40 while bentofile.yaml pinned 1.4.39, and
``bentoml build`` could not lock the image. These checks fail on any such drift.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
BENTO = ROOT / "requirements" / "bento.txt"
BRIDGE = ROOT / "requirements" / "bridge.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line.strip())
        if m:
            out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def test_lock_pins_every_dependency_of_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]
    locked = pins(LOCK)
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is in pyproject.toml but not in {LOCK.name}: run `make lock`"
        assert req.specifier.contains(locked[name], prereleases=True), (
            f"{LOCK.name} pins {req.name}=={locked[name]}, outside pyproject's {req.specifier}: run `make lock`"
        )


def test_every_lock_line_has_hashes() -> None:
    text = LOCK.read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    unhashed = [e.split()[0] for e in entries if PIN.match(e) and "--hash=sha256:" not in e]
    assert not unhashed, f"entries without hashes in {LOCK.name}: {unhashed[:5]}"


def test_bento_pins_equal_the_lock() -> None:
    locked, bento = pins(LOCK), pins(BENTO)
    assert "bentoml" in bento and "tensorflow-cpu" in bento
    drift = {n: (v, locked.get(n)) for n, v in bento.items() if locked.get(n) != v}
    assert not drift, f"requirements/bento.txt differs from the lock (name: (bento, lock)): {drift}; run `make lock`"


def test_bridge_pins_equal_the_lock() -> None:
    """The bridge image (streaming/Containerfile) adds aiokafka to the Bento's packages at the locked version."""
    locked, bridge = pins(LOCK), pins(BRIDGE)
    assert "aiokafka" in bridge, "requirements/bridge.txt does not pin aiokafka: run `make lock`"
    drift = {n: (v, locked.get(n)) for n, v in bridge.items() if locked.get(n) != v}
    assert not drift, f"requirements/bridge.txt differs from the lock (name: (bridge, lock)): {drift}; run `make lock`"
    # every line is a pin (nothing a build would re-resolve)
    lines = [ln.strip() for ln in BRIDGE.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(lines) == len(bridge), f"unpinned lines in {BRIDGE.name}: {lines}"


def test_bentofile_installs_the_generated_pins() -> None:
    python = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["python"]
    assert python.get("requirements_txt") == "requirements/bento.txt"
    assert "packages" not in python, "hand-written pins in bentofile.yaml drift from the lock"


@pytest.mark.parametrize("name", ["bentoml", "tensorflow-cpu", "pandas", "numpy", "pydantic"])
def test_installed_versions_are_the_locked_ones(name: str) -> None:
    """`make install` installs the lock: the venv running this test must match it."""
    assert metadata.version(name) == pins(LOCK)[canonicalize_name(name)], (
        f"installed {name} {metadata.version(name)} is not the locked one: run `make install`"
    )
