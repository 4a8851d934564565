"""``csfabric doctor``'s snapshot and DR rows: policies stored, services heartbeating, every
zone a policy names known to CloudStack."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from csfabric.cli.doctor_dr import checks_on
from csfabric.cloudstack.simulator import Simulator, World
from csfabric.kernel import HEARTBEAT_BUCKET, FabricSettings, RealClock
from csfabric.kernel.policy import PolicyDocument, PolicyStore
from csfabric.kernel.policy._model import parse_document
from csfabric.kernel.testing import MemoryNats, memory_bus

from tests.servers import free_port


def policy(copy_to: str) -> PolicyDocument:
    return parse_document(
        {
            "apiVersion": "csfabric/v1",
            "kind": "SnapshotPolicy",
            "metadata": {"name": "gold"},
            "spec": {
                "selector": {"zone": "zone-london"},
                "every": "10m",
                "retain": {"count": 6},
                "copyTo": [copy_to],
                "rpo": "15m",
            },
        }
    )


@pytest_asyncio.fixture
async def sim(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Simulator]:
    for name in list(os.environ):
        if name.startswith(("CSFABRIC_", "CLOUDSTACK_")):
            monkeypatch.delenv(name)
    simulator = Simulator(World.demo(3), clock=RealClock(), job_latency=0.01)
    await simulator.start("127.0.0.1", free_port())
    keys = simulator.keys()["admin"]
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_ENDPOINT", simulator.url)
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_KEY", keys["apikey"])
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_SECRET", keys["secretkey"])
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_no_policy_is_optional_and_says_how(sim: Simulator) -> None:
    bus = await memory_bus(MemoryNats(), service="doctor")
    rows = {c.component: c for c in await checks_on(bus, FabricSettings())}
    assert rows["snapshot policies"].status == "not configured"
    assert "csfabric policy apply" in rows["snapshot policies"].fix
    assert not any(c.failed for c in rows.values())
    assert "DR zones in listZones" not in rows


async def test_known_zones_and_heartbeats_pass(sim: Simulator) -> None:
    bus = await memory_bus(MemoryNats(), service="doctor")
    await PolicyStore(bus).apply([policy("zone-manchester")], "test:ops")
    kv = await bus.key_value(HEARTBEAT_BUCKET)
    await kv.put("replication.host-1", b"{}")
    rows = {c.component: c for c in await checks_on(bus, FabricSettings())}
    assert rows["snapshot policies"].status == "ok"
    assert rows["replication service"].status == "ok"
    assert rows["snapshots service"].status == "missing"  # policies, but nobody acts on them
    assert rows["DR zones in listZones"].status == "ok"
    assert "zone-manchester" in rows["DR zones in listZones"].detail


async def test_a_dr_zone_cloudstack_does_not_know_fails(sim: Simulator) -> None:
    bus = await memory_bus(MemoryNats(), service="doctor")
    await PolicyStore(bus).apply([policy("zone-leeds")], "test:ops")
    rows = {c.component: c for c in await checks_on(bus, FabricSettings())}
    zones = rows["DR zones in listZones"]
    assert zones.failed
    assert "gold: zone-leeds" in zones.detail
