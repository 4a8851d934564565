"""``setup`` of the replication service: idle without keys, and the whole loop (lease,
ledger, sweeps) copying a snapshot made without ``zoneids``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import Simulator, World
from csfabric.events import ActionEventData
from csfabric.kernel import LEASE_BUCKET, RealClock, make_event
from csfabric.kernel.policy import PolicyStore
from csfabric.kernel.policy._model import parse_document
from csfabric.kernel.testing import MemoryNats, memory_bus, service_context
from csfabric.replication.app import start_replication
from csfabric.replication.settings import ReplicationSettings

from tests.integration._workload import eventually
from tests.servers import free_port
from tests.unit.test_replication_service import audits


async def test_without_cloudstack_keys_it_starts_idle_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith(("CSFABRIC_", "CLOUDSTACK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path))
    ctx = service_context(await memory_bus(MemoryNats(), service="replication"))
    assert await start_replication(ctx, ReplicationSettings()) is None
    assert any("no CloudStack key" in w for w in ctx.warnings)


async def test_the_lease_holder_copies_and_audits() -> None:
    sim = Simulator(World.demo(5), clock=RealClock(), job_latency=0.01)
    await sim.start("127.0.0.1", free_port())
    keys = sim.keys()["admin"]
    cs = CloudStackSettings(
        endpoint=sim.url,
        key=keys["apikey"],
        secret=keys["secretkey"],
        poll_interval=0.01,
        rate_limit_per_second=None,
    )
    client = CloudStackClient(cs)
    bus = await memory_bus(MemoryNats(), service="replication")
    doc = parse_document(
        {
            "apiVersion": "csfabric/v1",
            "kind": "SnapshotPolicy",
            "metadata": {"name": "gold"},
            "spec": {
                "selector": {"zone": "zone-london", "tags": {"csfabric:dr-tier": "gold"}},
                "every": "10m",
                "retain": {"count": 6},
                "copyTo": ["zone-manchester"],
                "rpo": "15m",
            },
        }
    )
    await PolicyStore(bus).apply([doc], "test:ops")
    ctx = service_context(bus, "replication")
    await ctx.policies.start()
    settings = ReplicationSettings(sweep_interval=0.05, copy_grace=0)
    try:
        volume = next(v for v in sim.world.volumes.values() if v.name == "ledger-db-data")
        job = await client.job(
            "createSnapshot",
            volumeid=volume.id,
            tags=[{"key": "csfabric:policy", "value": "gold"}],
        )
        job.raise_for_status()
        replicator = await start_replication(ctx, settings, client=client)
        assert replicator is not None
        # The SNAPSHOT.COPY consumer is wired: a Completed event is noted for the lag
        # (of a snapshot CloudStack lists: the others are forgotten at the next sweep).
        done = RealClock().now()
        data = {
            "category": "action",
            "event": "SNAPSHOT.COPY",
            "eventDateTime": done.isoformat(),
            "status": "Completed",
            "failed": False,
            "entityuuid": str(job.resource_id),
            "native": {},
        }
        await bus.publish_event(
            make_event(
                type="cloudstack.action.SNAPSHOT.COPY",
                source="test",
                id="copy-1",
                subject=str(job.resource_id),
                data=data,
                dataschema=ActionEventData.dataschema(),
            )
        )
        await eventually(
            lambda: str(job.resource_id) in replicator.copied_at,
            within=10,
            what="the copy event noted",
        )
        assert replicator.copied_at[str(job.resource_id)] == done

        async def copied() -> bool:
            return bool(await audits(bus, "copied"))

        await eventually(copied, within=20, what="the snapshot copied by the lease holder")
        manchester = sim.world.zone_named("zone-manchester").id
        rows = await client.list("listSnapshots", id=str(job.resource_id), zoneid=manchester)
        assert [r["id"] for r in rows] == [job.resource_id]
        lease = await (await bus.key_value(LEASE_BUCKET)).get("replication")
        assert lease.value
        assert await audits(bus, "rpo-evidence")
    finally:
        await ctx.close(2.0)
        await ctx.policies.stop()
        await client.close()
        await sim.stop()
