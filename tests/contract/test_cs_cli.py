"""The real ``cs`` command-line client (cs 5.2.0, pinned) against a running simulator."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from csfabric.cloudstack.simulator import Simulator, World

from tests.servers import free_port

CS = str(Path(sys.executable).parent / "cs")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(World.demo(11), job_latency=0.2)
    await simulator.start("127.0.0.1", free_port())
    yield simulator
    await simulator.stop()


async def run_cs(sim: Simulator, *args: str, secret: str | None = None) -> tuple[int, str, str]:
    keys = sim.keys()["admin"]
    env = os.environ | {
        "CLOUDSTACK_ENDPOINT": sim.url,
        "CLOUDSTACK_KEY": keys["apikey"],
        "CLOUDSTACK_SECRET": secret or keys["secretkey"],
        "CLOUDSTACK_POLL_INTERVAL": "0.1",  # cs polls jobs every 2 s by default
        "HOME": "/nonexistent",  # no ~/.cloudstack.ini may leak into the test
    }
    proc = await asyncio.create_subprocess_exec(
        CS, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cs_lists_zones(sim: Simulator) -> None:
    code, out, err = await run_cs(sim, "listZones")
    assert code == 0, err
    zones = json.loads(out)["zone"]
    assert [z["name"] for z in zones] == ["zone-london", "zone-manchester"]


async def test_cs_deploys_a_vm_and_polls_its_job(sim: Simulator) -> None:
    zone = sim.world.zone_named("zone-london").id
    code, out, err = await run_cs(
        sim,
        "deployVirtualMachine",
        f"zoneid={zone}",
        "name=from-cs",
        f"serviceofferingid={sim.world.service_offering_id}",
        f"templateid={sim.world.template_id}",
    )
    assert code == 0, err
    body = json.loads(out)
    # cs polled queryAsyncJobResult until jobstatus 1 and prints the ``jobresult``.
    assert body["virtualmachine"]["name"] == "from-cs"
    assert body["virtualmachine"]["state"] == "Running"
    assert any(
        j.status == 1 and j.instanceid == body["virtualmachine"]["id"]
        for j in sim.world.jobs.values()
    )


async def test_cs_post_and_async_flag(sim: Simulator) -> None:
    project = next(p for p in sim.world.projects.values() if p.name == "team-1")
    code, out, err = await run_cs(sim, "--post", "--async", "suspendProject", f"id={project.id}")
    assert code == 0, err
    assert set(json.loads(out)) == {"jobid"}


async def test_cs_wrong_signature_gets_cloudstacks_401(sim: Simulator) -> None:
    code, out, err = await run_cs(sim, "listZones", secret="not-the-secret")
    assert code != 0
    text = out + err
    assert "401" in text
    assert "unable to verify user credentials and/or request signature" in text


async def test_cs_expired_v3_signature_is_refused(sim: Simulator) -> None:
    # cs keeps a caller-given ``expires`` and signs it: a correctly signed but expired request.
    code, out, err = await run_cs(
        sim, "listZones", "signatureVersion=3", "expires=2020-01-01T00:00:00+0000"
    )
    assert code != 0
    assert "unable to verify user credentials and/or request signature" in out + err
