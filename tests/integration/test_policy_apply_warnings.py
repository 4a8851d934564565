"""``csfabric policy apply`` of a SnapshotPolicy against a real nats-server and the
simulator: the worst-case RPO and retention warnings are printed, and the apply goes ahead."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from csfabric.cli import app
from csfabric.cloudstack.simulator import Simulator, World
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import RealClock
from typer.testing import CliRunner, Result

from tests.servers import free_port

pytestmark = pytest.mark.integration

SEED = """\
apiVersion: csfabric/v1
kind: SnapshotPolicy
metadata: {name: seed-15m}
spec:
  selector: {zone: zone-london, tags: {csfabric:dr-tier: gold}}
  every: 15m
  retain: {count: 6}
  copyTo: [zone-manchester]
  rpo: 15m
  jitter: 30s
"""


async def test_the_seed_schedule_is_applied_with_a_warning(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    sim = Simulator(World.demo(2), clock=RealClock(), job_latency=0.01)
    await sim.start("127.0.0.1", free_port())
    keys = sim.keys()["admin"]
    env = {
        "CSFABRIC_NATS_URL": nats_server.url,
        "CSFABRIC_STATE_DIR": str(tmp_path / "state"),
        "CSFABRIC_CLOUDSTACK_ENDPOINT": sim.url,
        "CSFABRIC_CLOUDSTACK_KEY": keys["apikey"],
        "CSFABRIC_CLOUDSTACK_SECRET": keys["secretkey"],
    }
    policy = tmp_path / "seed.yaml"
    policy.write_text(SEED)
    try:

        async def run(*args: str) -> Result:
            return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)

        applied = await run("policy", "apply", str(policy))
        assert applied.exit_code == 0, applied.stderr
        assert "created" in applied.stdout
        assert (
            "warning: SnapshotPolicy seed-15m: worst-case RPO 15m30s (every 15m + jitter 30s;"
            " no copy time observed yet" in applied.stderr
        )
        again = await run("policy", "apply", str(policy), "--json")
        body = json.loads(again.stdout)
        assert [c["change"] for c in body["changes"]] == ["unchanged"]
        assert len(body["warnings"]) == 1
        assert keys["secretkey"] not in applied.stdout + applied.stderr + again.stdout
    finally:
        await sim.stop()
