"""``csfabric dr plan`` and ``dr drill`` as a user runs them: a process, a simulator on a socket,
policies from a file, the drill's audit record on a real nats-server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from csfabric.cli.dr_evidence import read_report
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import Simulator, World
from csfabric.kernel import RealClock
from csfabric.kernel.bus import Bus

from tests.servers import NatsServerProcess, free_port

pytestmark = pytest.mark.integration
POLICY = """\
apiVersion: csfabric/v1
kind: SnapshotPolicy
metadata: {name: gold-15m}
spec:
  selector: {zone: zone-london, tags: {"csfabric:dr-tier": gold}}
  every: 10m
  retain: {count: 6}
  copyTo: [zone-manchester]
  rpo: 15m
"""


@pytest_asyncio.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[Simulator]:
    sim = Simulator(World.demo(11), clock=RealClock(), job_latency=0.05, state_dir=tmp_path)
    await sim.start("127.0.0.1", free_port())
    try:
        keys = sim.keys()["admin"]
        settings = CloudStackSettings(
            endpoint=sim.url, key=keys["apikey"], secret=keys["secretkey"], poll_interval=0.02
        )
        man = sim.world.zone_named("zone-manchester").id
        async with CloudStackClient(settings, clock=sim.clock) as client:
            for vol in sim.world.volumes.values():
                if vol.name in ("ledger-db-data", "patient-records"):
                    job = await client.job("createSnapshot", volumeid=vol.id, zoneids=man)
                    job.raise_for_status()
        yield sim
    finally:
        await sim.stop()


def env_for(sim: Simulator, state_dir: Path, nats_url: str | None = None) -> dict[str, str]:
    keys = sim.keys()["admin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSFABRIC_", "CLOUDSTACK_"))}
    env |= {
        "CSFABRIC_STATE_DIR": str(state_dir),
        "CSFABRIC_CLOUDSTACK_ENDPOINT": sim.url,
        "CSFABRIC_CLOUDSTACK_KEY": keys["apikey"],
        "CSFABRIC_CLOUDSTACK_SECRET": keys["secretkey"],
        "CSFABRIC_CLOUDSTACK_POLL_INTERVAL": "0.02",
    }
    return env | ({"CSFABRIC_NATS_URL": nats_url} if nats_url else {})


async def csfabric(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "csfabric.cli", *args]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=env, timeout=120, check=False
    )


async def test_plan_json_names_the_dr_copies(simulator: Simulator, tmp_path: Path) -> None:
    policy = tmp_path / "gold.yaml"
    policy.write_text(POLICY)
    env = env_for(simulator, tmp_path)
    done = await csfabric(
        env, "dr", "plan", "--zone", "zone-manchester", "--file", str(policy), "--json"
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    man = simulator.world.zone_named("zone-manchester").id
    want = {s.volumeid: s.id for s in simulator.world.snapshots.values()}
    assert {v["volume_name"] for v in body["volumes"]} == {"ledger-db-data", "patient-records"}
    for step in body["volumes"]:
        assert step["command"] == "createVolume"
        assert step["params"]["zoneid"] == man
        assert step["params"]["snapshotid"] == want[step["volume_id"]]
    assert body["complete"] is True
    text = await csfabric(env, "dr", "plan", "--zone", "zone-manchester", "--file", str(policy))
    assert "createVolume dr-ledger-db-data" in text.stdout
    bronze = tmp_path / "bronze.yaml"
    bronze.write_text(POLICY.replace("gold", "bronze"))  # scratch-space: never snapshotted
    blocked = await csfabric(env, "dr", "plan", "--zone", man, "--policies", str(bronze))
    assert blocked.returncode == 3, blocked.stderr
    assert "BLOCKED volume scratch-space" in blocked.stdout
    unknown = await csfabric(env, "dr", "plan", "--zone", "zone-nowhere", "--file", str(policy))
    assert unknown.returncode == 1
    assert "no zone 'zone-nowhere'" in unknown.stderr


async def test_drill_refuses_a_cloud_it_does_not_know_as_a_simulator(
    simulator: Simulator, tmp_path: Path
) -> None:
    policy = tmp_path / "gold.yaml"
    policy.write_text(POLICY)
    before = set(simulator.world.volumes)
    env = env_for(simulator, tmp_path / "other-state")
    done = await csfabric(env, "dr", "drill", "--zone", "zone-manchester", "--file", str(policy))
    assert done.returncode == 1
    assert "--yes-real-cloud" in done.stderr
    assert set(simulator.world.volumes) == before  # nothing was created


async def test_drill_runs_reports_rto_records_audit_and_cleans_up(
    simulator: Simulator, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    policy = tmp_path / "gold.yaml"
    policy.write_text(POLICY)
    before = set(simulator.world.volumes)
    env = env_for(simulator, tmp_path, nats_server.url)
    args = ("dr", "drill", "--zone", "zone-manchester", "--file", str(policy))
    done = await csfabric(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is True
    assert result["volumes_restored"] == 2
    assert result["cleaned_up"] is True
    assert 0 < result["measured_rto_s"] <= result["target_rto_s"] == 3600
    assert set(simulator.world.volumes) == before
    # Recorded: the audit record on csfabric.audit.dr is what `dr report` shows.
    bus = await Bus.connect(nats_server.url, service="test")
    try:
        now = RealClock().now()
        report = await read_report(bus.js, now - timedelta(hours=1), now + timedelta(hours=1))
    finally:
        await bus.close()
    assert [d.id for d in report.drills] == [result["id"]]
    assert result["audit_id"]
    # A target the drill cannot meet: exit 4, still cleaned up.
    over = await csfabric(env, *args, "--target", "0s")
    assert over.returncode == 4, over.stderr
    assert "OVER the target" in over.stdout
    assert set(simulator.world.volumes) == before


async def test_a_drill_whose_record_cannot_be_written_still_prints_and_fails(
    simulator: Simulator, tmp_path: Path
) -> None:
    policy = tmp_path / "gold.yaml"
    policy.write_text(POLICY)
    env = env_for(simulator, tmp_path, f"nats://127.0.0.1:{free_port()}")  # nobody listens
    done = await csfabric(env, "dr", "drill", "--zone", "zone-manchester", "--file", str(policy))
    assert done.returncode == 1
    assert "RTO" in done.stdout
    assert "cleaned up: yes" in done.stdout
    assert "audit record was not written" in done.stderr
