"""``csfabric dr plan`` and ``dr drill`` against the simulator over a loopback socket.

The simulator and the client share one stepped clock, so job latencies are fabric seconds
and the measured RTO is exact and fast.  Snapshots are made the real way
(``createSnapshot zoneids=<DR zone>``) and the plan is read from the same listings the CLI
reads (:func:`read_inventory`).  Today's simulator has no ``attachVolume``, so the drill
here restores detached volumes; VM redeploys are covered by the plan's unit tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from csfabric.cli.dr_cloud import read_inventory
from csfabric.cli.dr_drill import is_simulator
from csfabric.cli.dr_run import run_drill
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import Simulator, World
from csfabric.dr import SnapshotPolicy, plan
from csfabric.kernel import SteppedClock

from tests.servers import free_port

pytestmark = pytest.mark.integration
T = TypeVar("T")
JOB_LATENCY = 40.0  # fabric seconds per async job
GOLD = SnapshotPolicy.model_validate(
    {
        "selector": {"zone": "zone-london", "tags": {"csfabric:dr-tier": "gold"}},
        "every": "10m",
        "retain": {"count": 6},
        "copyTo": ["zone-manchester"],
        "rpo": "15m",
    }
)


@pytest_asyncio.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[tuple[Simulator, CloudStackClient]]:
    clock = SteppedClock()
    sim = Simulator(World.demo(5), clock=clock, job_latency=JOB_LATENCY, state_dir=tmp_path)
    await sim.start("127.0.0.1", free_port())
    keys = sim.keys()["admin"]
    settings = CloudStackSettings(
        endpoint=sim.url,
        key=keys["apikey"],
        secret=keys["secretkey"],
        poll_interval=5.0,
        rate_limit_per_second=None,
        retry_backoff=0.001,
    )
    client = CloudStackClient(settings, clock=clock)
    try:
        async with client:
            yield sim, client
    finally:
        await sim.stop()


async def driven(clock: SteppedClock, work: Awaitable[T]) -> T:
    """Run ``work`` while moving the stepped clock to each next sleeper's deadline."""
    task = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.sleep(0.002)  # real time for the socket round trips
        if clock.sleepers:
            await clock.advance_to_next()
    return task.result()


def volume_id(sim: Simulator, name: str) -> str:
    return next(v.id for v in sim.world.volumes.values() if v.name == name)


async def snapshot(client: CloudStackClient, volume: str, *zones: str) -> str:
    params: dict[str, Any] = {"volumeid": volume}
    if zones:
        params["zoneids"] = ",".join(zones)
    result = await client.job("createSnapshot", **params)
    result.raise_for_status()
    assert result.resource_id is not None
    return result.resource_id


async def test_drill_restores_from_the_dr_copies_times_it_and_cleans_up(
    cloud: tuple[Simulator, CloudStackClient],
) -> None:
    sim, client = cloud
    clock = client.clock
    assert isinstance(clock, SteppedClock)
    man = sim.world.zone_named("zone-manchester").id
    ledger, records = volume_id(sim, "ledger-db-data"), volume_id(sim, "patient-records")
    old = await driven(clock, snapshot(client, ledger, man))
    await clock.advance(600)
    newest = await driven(clock, snapshot(client, ledger, man))
    rec = await driven(clock, snapshot(client, records, man))
    await driven(clock, snapshot(client, volume_id(sim, "scratch-space"), man))  # bronze
    before = set(sim.world.volumes)

    inventory = await driven(clock, read_inventory(client, "zone-manchester"))
    recovery = plan({"gold": GOLD}, inventory, clock.now())
    assert recovery.complete
    assert {(r.volume_name, r.snapshot_id) for r in recovery.volumes} == {
        ("ledger-db-data", newest),
        ("patient-records", rec),
    }
    assert old != newest
    assert all(r.params["zoneid"] == man for r in recovery.volumes)

    result = await driven(clock, run_drill(client, recovery, target_rto_s=3600, drill_id="d1"))
    assert result.ok, result.steps
    assert result.volumes_restored == 2
    assert result.cleaned_up
    names = [s.name for s in result.steps]
    assert names[:2] == ["createVolume dr-ledger-db-data", "createVolume dr-patient-records"]
    assert [n.split()[:2] for n in names[2:]] == [["cleanup", "deleteVolume"]] * 2
    # Each restore is one job, at least its latency in fabric time; the RTO ends with the
    # last of them (how much they overlap depends on when each request lands, so no bound).
    restores = result.steps[:2]
    assert all((s.finished - s.started).total_seconds() >= JOB_LATENCY for s in restores)
    last = max(s.finished for s in restores)
    assert result.measured_rto_s == (last - result.started).total_seconds()
    assert result.measured_rto_s >= JOB_LATENCY
    # Cleaned up: nothing the drill made is left, nothing else was touched.
    assert set(sim.world.volumes) == before


async def test_rto_over_target_fails_the_drill_but_still_cleans_up(
    cloud: tuple[Simulator, CloudStackClient],
) -> None:
    sim, client = cloud
    clock = client.clock
    assert isinstance(clock, SteppedClock)
    man = sim.world.zone_named("zone-manchester").id
    for name in ("ledger-db-data", "patient-records"):
        await driven(clock, snapshot(client, volume_id(sim, name), man))
    before = set(sim.world.volumes)
    recovery = plan({"gold": GOLD}, await driven(clock, read_inventory(client, man)), clock.now())
    result = await driven(
        clock, run_drill(client, recovery, target_rto_s=JOB_LATENCY, drill_id="d2")
    )
    assert all(s.ok for s in result.steps)
    assert result.measured_rto_s > result.target_rto_s
    assert not result.ok
    assert result.cleaned_up
    assert set(sim.world.volumes) == before


async def test_a_volume_without_a_dr_copy_blocks_the_plan_and_fails_the_drill(
    cloud: tuple[Simulator, CloudStackClient],
) -> None:
    sim, client = cloud
    clock = client.clock
    assert isinstance(clock, SteppedClock)
    man = sim.world.zone_named("zone-manchester").id
    await driven(clock, snapshot(client, volume_id(sim, "ledger-db-data"), man))
    await driven(clock, snapshot(client, volume_id(sim, "patient-records")))  # London only
    recovery = plan({"gold": GOLD}, await driven(clock, read_inventory(client, man)), clock.now())
    assert [(b.name, b.reason) for b in recovery.blocked] == [
        ("patient-records", "no complete copy in zone-manchester")
    ]
    result = await driven(clock, run_drill(client, recovery, target_rto_s=3600, drill_id="d3"))
    assert result.steps[0].name == "plan"
    assert not result.steps[0].ok
    assert "patient-records" in result.steps[0].detail
    assert result.volumes_restored == 1
    assert not result.ok


async def test_a_volume_lost_with_its_zone_is_restored_from_its_tagged_copy(
    cloud: tuple[Simulator, CloudStackClient],
) -> None:
    sim, client = cloud
    clock = client.clock
    assert isinstance(clock, SteppedClock)
    man = sim.world.zone_named("zone-manchester").id
    for name in ("ledger-db-data", "patient-records"):
        await driven(clock, snapshot(client, volume_id(sim, name), man))
    lost = volume_id(sim, "patient-records")
    tagged = await driven(
        clock,
        client.job(
            "createSnapshot",
            volumeid=lost,
            zoneids=man,
            **{"tags[0].key": "csfabric:policy", "tags[0].value": "gold"},
        ),
    )
    tagged.raise_for_status()
    del sim.world.volumes[lost]  # London is gone: listVolumes no longer shows it
    recovery = plan({"gold": GOLD}, await driven(clock, read_inventory(client, man)), clock.now())
    assert recovery.complete
    restored = {r.volume_id: r.snapshot_id for r in recovery.volumes}
    assert restored[lost] == tagged.resource_id  # the newest copy its policy made
    assert volume_id(sim, "ledger-db-data") in restored
    assert any("not listed any more" in note for note in recovery.notes)


async def test_only_a_simulator_this_state_dir_knows_counts(
    cloud: tuple[Simulator, CloudStackClient], tmp_path: Path
) -> None:
    sim, _ = cloud
    assert is_simulator(sim.url, tmp_path)
    assert not is_simulator("https://cloud.example.gov/client/api", tmp_path)
    assert not is_simulator(sim.url, tmp_path / "elsewhere")


async def test_drill_redeploys_the_vm_and_attaches_its_restored_volume(
    cloud: tuple[Simulator, CloudStackClient],
) -> None:
    sim, client = cloud
    clock = client.clock
    assert isinstance(clock, SteppedClock)
    world = sim.world
    london, man = world.zone_named("zone-london"), world.zone_named("zone-manchester").id
    vm = next(v for v in world.vms.values() if v.name == "dept-finance-app-1")
    data = world.add_volume("finance-db", london, vm.account_id, 10)
    data.virtualmachineid, data.deviceid = vm.id, 1
    world.tag("Volume", data.id, vm.account_id, **{"csfabric:dr-tier": "platinum"})
    platinum = GOLD.model_copy(
        update={
            "selector": GOLD.selector.model_copy(update={"tags": {"csfabric:dr-tier": "platinum"}})
        }
    )
    await driven(clock, snapshot(client, data.id, man))
    before_vms, before_volumes = set(world.vms), set(world.volumes)

    inventory = await driven(clock, read_inventory(client, man))
    recovery = plan({"platinum": platinum}, inventory, clock.now())
    assert recovery.complete, recovery.blocked
    (redeploy,) = recovery.vms
    assert redeploy.vm_name == "dept-finance-app-1"
    assert redeploy.attach == (data.id,)
    assert redeploy.params["zoneid"] == man
    assert not recovery.notes  # every listing answered
    assert redeploy.params["networkids"] in {
        n.id for n in world.networks.values() if n.zoneid == man
    }

    result = await driven(clock, run_drill(client, recovery, target_rto_s=3600, drill_id="vm"))
    names = [s.name.split()[0] for s in result.steps if not s.name.startswith("cleanup")]
    assert names == ["createVolume", "deployVirtualMachine", "attachVolume"]
    assert result.ok, [s for s in result.steps if not s.ok]
    assert result.vms_redeployed == 1
    assert set(world.vms) == before_vms
    assert set(world.volumes) == before_volumes
