"""``csfabric policy …`` and ``csfabric pause|resume --all`` against a real nats-server.

The CLI runs in-process (typer's CliRunner, in a worker thread because each command runs
its own event loop) so that the test kind registered here is known to it; the URL and
the operator come from the environment exactly as in a shell.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from csfabric.cli import app
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel.bus import Bus
from nats.js.errors import NotFoundError
from typer.testing import CliRunner, Result

from tests.policykinds import TEST_KIND, register_test_kinds
from tests.servers import free_port

pytestmark = pytest.mark.integration

OPERATOR = "token:carol@example.org"
NIGHTLY = """\
apiVersion: csfabric/v1
kind: TestPolicy
metadata:
  name: nightly
  labels: {team: storage}
spec:
  every: 24h
  action: snapshot
  blastRadius: {max: 5, per: 1h}
---
apiVersion: csfabric/v1
kind: TestPolicy
metadata: {name: hourly}
spec: {every: PT1H}
"""
BROKEN = """\
apiVersion: csfabric/v1
kind: TestPolicy
metadata: {name: broken}
spec:
  every: 15 minutes
  retian: 3
"""


class Cli:
    def __init__(self, url: str, state: Path) -> None:
        register_test_kinds()
        self.env = {
            "CSFABRIC_NATS_URL": url,
            "CSFABRIC_STATE_DIR": str(state),
            "CSFABRIC_OPERATOR": OPERATOR,
        }

    async def __call__(self, *args: str, code: int = 0) -> Result:
        result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=self.env)
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self(*args, "--json")).stdout)


@pytest.fixture
def cli(nats_server: NatsServerProcess, tmp_path: Path) -> Cli:
    return Cli(nats_server.url, tmp_path / "state")


@pytest.fixture
def good_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "good"
    (directory / "nested").mkdir(parents=True)
    (directory / "snapshots.yaml").write_text(NIGHTLY)
    return directory


async def test_apply_list_show_diff(cli: Cli, good_dir: Path, tmp_path: Path) -> None:
    applied = await cli("policy", "apply", str(good_dir))
    assert "nightly" in applied.stdout
    assert "created" in applied.stdout
    again = await cli.json("policy", "apply", str(good_dir))
    assert [c["change"] for c in again["changes"]] == ["unchanged", "unchanged"]

    listed = await cli.json("policy", "list")
    assert [(p["name"], p["version"], p["appliedBy"]) for p in listed["policies"]] == [
        ("hourly", 1, OPERATOR),
        ("nightly", 1, OPERATOR),
    ]
    assert listed["globalPause"] is None

    shown = await cli("policy", "show", "nightly")
    document = yaml.safe_load(shown.stdout)
    assert document["metadata"]["labels"] == {"team": "storage"}
    assert document["spec"]["blastRadius"] == {"max": 5, "per": "1h"}

    changed = tmp_path / "changed.yaml"
    changed.write_text(NIGHTLY.replace("action: snapshot", "action: rotate"))
    diff = await cli("policy", "diff", str(changed))
    assert "TestPolicy.nightly: updated → version 2" in diff.stdout
    assert "-  action: snapshot\n+  action: rotate" in diff.stdout
    assert "TestPolicy.hourly: unchanged (version 1)" in diff.stdout
    assert (await cli.json("policy", "show", "nightly"))["version"] == 1, "diff wrote nothing"

    await cli("policy", "apply", str(changed))
    old = yaml.safe_load(
        (await cli("policy", "show", f"{TEST_KIND}.nightly", "--version", "1")).stdout
    )
    assert old["spec"]["action"] == "snapshot"
    assert (await cli.json("policy", "show", "nightly"))["version"] == 2
    await cli("policy", "show", "nightly", "--version", "7", code=1)
    missing = await cli("policy", "show", "nosuch", code=1)
    assert "no stored policy is called 'nosuch'" in missing.stderr


async def test_one_bad_file_stores_nothing_and_names_file_and_line(
    cli: Cli, good_dir: Path
) -> None:
    bad = good_dir / "nested" / "broken.yaml"
    bad.write_text(BROKEN)
    result = await cli("policy", "apply", str(good_dir), code=1)
    lines = result.stderr.splitlines()
    assert any(line.startswith(f"{bad}:5: spec.every: bad duration") for line in lines), lines
    assert any(line.startswith(f"{bad}:6: spec.retian:") for line in lines), lines
    assert "nothing was stored" in lines[-1]
    assert (await cli.json("policy", "list"))["policies"] == []


async def test_pause_resume_delete_and_kill_switch_are_audited(
    cli: Cli, good_dir: Path, nats_server: NatsServerProcess
) -> None:
    await cli("policy", "apply", str(good_dir))
    await cli("policy", "pause", "nightly")
    paused = {p["name"]: p["paused"] for p in (await cli.json("policy", "list"))["policies"]}
    assert paused == {"hourly": False, "nightly": True}
    await cli("policy", "resume", "nightly")
    assert not (await cli.json("policy", "show", "nightly"))["paused"]

    refused = await cli("pause", code=2)
    assert "use `csfabric policy pause NAME` for one policy" in refused.stderr
    await cli("pause", "--all")
    kill = (await cli.json("policy", "list"))["globalPause"]
    assert (kill["paused"], kill["by"]) == (True, OPERATOR)
    assert (await cli.json("resume", "--all"))["paused"] is False

    await cli("policy", "delete", "hourly")
    assert [p["name"] for p in (await cli.json("policy", "list"))["policies"]] == ["nightly"]

    bus = await Bus.connect(nats_server.url, service="reader", create_streams=False)
    try:
        audit = await _records(bus, "CSFABRIC_AUDIT")
    finally:
        await bus.close()
    decisions = [(r["decision"], r.get("policy")) for r in audit]
    assert decisions == [
        ("apply", f"{TEST_KIND}.nightly"),
        ("apply", f"{TEST_KIND}.hourly"),
        ("pause", f"{TEST_KIND}.nightly"),
        ("resume", f"{TEST_KIND}.nightly"),
        ("pause", None),
        ("resume", None),
        ("delete", f"{TEST_KIND}.hourly"),
    ]
    assert {r["operator"] for r in audit} == {OPERATOR}


async def test_unreachable_nats_fails_fast_with_the_url(tmp_path: Path) -> None:
    cli = Cli(f"nats://127.0.0.1:{free_port()}", tmp_path / "state")
    result = await cli("policy", "list", code=1)
    assert "cannot reach NATS at nats://127.0.0.1:" in result.stderr


async def _records(bus: Bus, stream: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    seq = 1
    while True:
        try:
            msg = await bus.js.get_msg(stream, seq=seq, subject=">", next=True)
        except NotFoundError:
            return found
        found.append(json.loads(msg.data or b"null"))
        seq = (msg.seq or seq) + 1
