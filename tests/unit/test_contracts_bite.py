"""The import-linter contracts fail when broken: each is run on a copy of the package with
an import that breaks it (a contract that passes whatever is imported guards nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")

# module file (under services/csfabric) → an import it must not make → the contract it breaks
VIOLATIONS = [
    (
        "cloudstack/simulator/_jobs.py",
        "from csfabric.cloudstack import CloudStackClient",  # the client, through its door
        "The simulator imitates CloudStack from outside: it does not know the client",
    ),
    (
        "cloudstack/simulator/_jobs.py",
        "from csfabric.kernel.bus import Bus",
        "The simulator does not know the bus",
    ),
    (
        "ingest/feeds/poller.py",
        "from csfabric.kernel._clock import RealClock",
        "Door: the kernel's foundations only through csfabric.kernel",
    ),
    (
        "kernel/_leases.py",
        "from csfabric.kernel import Auditor",  # through the door, still the audit part
        "Kernel parts that keep their own guarantee are unaware of each other",
    ),
    (
        "ingest/logic/_dedupe.py",
        "import nats",
        "Pure logic imports no broker, HTTP or tracing library, and never the clock",
    ),
    (
        "devstack/_demo.py",
        "import csfabric.ingest.app",
        "csfabric dev finds services through entry points, never imports one",
    ),
]


def _lint(services: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(services)}
    done = subprocess.run(
        [str(LINT), "--no-cache", "--config", str(REPO / "pyproject.toml")],
        capture_output=True, text=True, cwd=services, env=env, timeout=120, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


@pytest.mark.parametrize(("module", "line", "contract"), VIOLATIONS, ids=lambda v: str(v)[:40])
def test_a_contract_breaks_when_broken(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    assert LINT.exists(), f"lint-imports not installed beside {sys.executable}"
    services = tmp_path / "services"
    source = REPO / "services" / "csfabric"
    shutil.copytree(source, services / "csfabric", ignore=shutil.ignore_patterns("__pycache__"))
    assert f"{contract} KEPT" in _lint(services), "the contract should hold on the tree as it is"
    with (services / "csfabric" / module).open("a") as file:
        file.write(f"\n{line}\n")
    assert f"{contract} BROKEN" in _lint(services)
