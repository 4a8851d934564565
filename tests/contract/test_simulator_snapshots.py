"""Contract: the simulator's snapshots behave as CloudStack 4.19+'s multi-zone snapshots.

Copies per zone's image store, listSnapshots' ``showunique``/``zoneid``/``datastorestate``
(the interface the DR services rely on: a copy in zone Z is complete iff ``listSnapshots
zoneid=Z showunique=false`` has its row with ``datastorestate == "Ready"``), copies that
take ``copy_latency`` on the kernel clock (stepped here), call-time refusals, per-zone
deletes, and the ActionEvent chains CloudStack records for these commands.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from csfabric.cloudstack.simulator import FaultPlan, Simulator, World
from csfabric.kernel import SteppedClock

from tests.contract._scenario import Caller
from tests.contract.test_simulator_api import shape_diff

Json = dict[str, Any]
GOLDEN = Path(__file__).parent / "golden"
JOB, COPY = 2.0, 30.0  # fabric seconds: job latency, copy latency


class Rig:
    def __init__(self, sim: Simulator, clock: SteppedClock) -> None:
        self.sim, self.clock, self.world = sim, clock, sim.world
        self.call = Caller(sim)
        self.london = self.world.zone_named("zone-london").id
        self.manchester = self.world.zone_named("zone-manchester").id
        self.gold = next(v for v in self.world.volumes.values() if v.name == "ledger-db-data")

    async def step(self, seconds: float) -> None:
        for _ in range(20):  # let submitted jobs reach their first sleep
            await asyncio.sleep(0)
        await self.clock.advance(seconds)
        for _ in range(20):
            await asyncio.sleep(0)

    async def submit(self, command: str, /, **params: Any) -> Json:
        body = await self.call(command, **params)
        inner: Json = body[f"{command.lower()}response"]
        return inner

    async def job(self, jobid: str) -> Json:
        done = await self.call("queryAsyncJobResult", jobid=jobid)
        inner: Json = done["queryasyncjobresultresponse"]
        return inner

    async def run(self, command: str, /, **params: Any) -> Json:
        """Submit, step past job and copy latency, return the finished job."""
        first = await self.submit(command, **params)
        await self.step(JOB + COPY + 1)
        return await self.job(first["jobid"])

    async def rows(self, **params: Any) -> list[Json]:
        body = (await self.call("listSnapshots", listall="true", **params))["listsnapshotsresponse"]
        rows: list[Json] = body.get("snapshot", [])
        return rows

    def actions(self, entity: str, event: str | None = None) -> list[Json]:
        return [
            e.body
            for e in self.sim.emitter.emitted
            if e.category == "ActionEvent"
            and e.body.get("entityuuid") == entity
            and (event is None or e.event_type == event)
        ]


@pytest.fixture
async def rig() -> Any:
    clock = SteppedClock()
    sim = Simulator(World.demo(7), clock=clock, job_latency=JOB, copy_latency=COPY)
    yield Rig(sim, clock)
    await sim.stop()


def project_volume(rig: Rig, name: str = "project-alpha") -> tuple[str, str]:
    """(volume id, project id) of the ROOT volume of a demo project's VM."""
    proj = next(p for p in rig.world.projects.values() if p.name == name)
    vol = next(v for v in rig.world.volumes.values() if v.account_id == proj.account_id)
    return vol.id, proj.id


# -- listSnapshots and copy latency ---------------------------------------------------------


async def test_a_copy_is_creating_until_copy_latency_then_ready(rig: Rig) -> None:
    first = await rig.submit(
        "createSnapshot",
        volumeid=rig.gold.id,
        zoneids=rig.manchester,
        **{"tags[0].key": "csfabric:key", "tags[0].value": "k1"},
    )
    snap = first["id"]
    # Allocated at once, in the volume's zone only; not tagged until the snapshot is taken.
    [row] = await rig.rows(id=snap)
    assert (row["state"], row["zoneid"]) == ("Allocated", rig.london)
    assert await rig.rows(**{"tags[0].key": "csfabric:key", "tags[0].value": "k1"}) == []

    await rig.step(JOB)  # backed up in London; the Manchester copy is downloading
    assert (await rig.job(first["jobid"]))["jobstatus"] == 0
    [copying] = await rig.rows(id=snap, zoneid=rig.manchester, showunique="false")
    assert copying["state"] == "BackedUp"
    assert copying["datastorestate"] == "Creating"
    assert copying["status"] == "0% Downloaded"
    assert copying["downloaddetails"] == {
        "downloadPercent": "0",
        "downloadState": "DOWNLOAD_IN_PROGRESS",
    }
    [origin] = await rig.rows(id=snap, zoneid=rig.london, showunique="false")
    assert origin["datastorestate"] == "Ready"

    await rig.step(COPY)
    done = await rig.job(first["jobid"])
    assert done["jobstatus"] == 1
    assert done["jobresult"]["snapshot"]["snapshottype"] == "MANUAL"  # job results only
    [ready] = await rig.rows(id=snap, zoneid=rig.manchester, showunique="false")
    assert (ready["datastorestate"], ready["status"]) == ("Ready", "BackedUp")
    # showunique (default true): one row per snapshot; zoneid=Z: the row is Z's.
    [unique] = await rig.rows(id=snap)
    assert unique["zoneid"] in {rig.london, rig.manchester}
    assert "snapshottype" not in unique
    assert "datastorestate" not in unique
    [in_manchester] = await rig.rows(id=snap, zoneid=rig.manchester)
    assert in_manchester["zonename"] == "zone-manchester"
    per_store = await rig.rows(id=snap, showunique="false")
    assert sorted(r["zoneid"] for r in per_store) == sorted([rig.london, rig.manchester])
    tagged = await rig.rows(**{"tags[0].key": "csfabric:key", "tags[0].value": "k1"})
    assert [r["id"] for r in tagged] == [snap]


async def test_per_store_rows_match_the_golden_shape(rig: Rig) -> None:
    done = await rig.run("createSnapshot", volumeid=rig.gold.id, zoneids=rig.manchester)
    snap = done["jobresult"]["snapshot"]["id"]
    body = await rig.call("listSnapshots", id=snap, showunique="false")
    golden = json.loads((GOLDEN / "listSnapshots.showunique-false.json").read_text())
    assert shape_diff(golden, body) == []
    assert body["listsnapshotsresponse"]["count"] == 2


async def test_intervaltype_filters_only_with_volumeid(rig: Rig) -> None:
    await rig.run("createSnapshot", volumeid=rig.gold.id)
    assert len(await rig.rows(intervaltype="HOURLY")) == 1  # ignored without volumeid
    assert await rig.rows(intervaltype="HOURLY", volumeid=rig.gold.id) == []
    assert len(await rig.rows(intervaltype="MANUAL", volumeid=rig.gold.id)) == 1
    status, body = await rig.call.raw(
        "listSnapshots", intervaltype="EVERY_SECOND", volumeid=rig.gold.id
    )
    assert status == 431
    assert body["listsnapshotsresponse"]["errortext"] == (
        "Unsupported snapshot interval type EVERY_SECOND"
    )


# -- events -----------------------------------------------------------------------------------


async def test_create_with_zoneids_records_create_and_copy_chains(rig: Rig) -> None:
    done = await rig.run("createSnapshot", volumeid=rig.gold.id, zoneids=rig.manchester)
    snap = done["jobresult"]["snapshot"]["id"]
    create = rig.actions(snap, "SNAPSHOT.CREATE")
    assert [(e["status"], e["description"]) for e in create] == [
        ("Created", "Successfully created entity for allocating snapshot"),
        ("Scheduled", f"creating snapshot for volume: {rig.gold.id}"),
        ("Started", "Taking snapshot"),
        ("Completed", "Successfully completed taking snapshot"),
    ]
    copy = rig.actions(snap, "SNAPSHOT.COPY")
    assert [(e["status"], e["description"]) for e in copy] == [
        ("Started", f"Copying snapshot ID: {snap}"),
        ("Completed", f"Completed copying snapshot ID: {snap} to zone(s): zone-manchester"),
    ]
    order = [
        e.body["status"] + e.event_type for e in rig.sim.emitter.emitted if e.body in create + copy
    ]
    assert order.index("StartedSNAPSHOT.COPY") > order.index("StartedSNAPSHOT.CREATE")
    assert order.index("CompletedSNAPSHOT.COPY") < order.index("CompletedSNAPSHOT.CREATE")
    row = next(r for r in rig.world.events if r.description.startswith("Completed copying"))
    started = next(r for r in rig.world.events if r.description == f"Copying snapshot ID: {snap}")
    assert row.parentid == started.id
    assert started.parentid is None


async def test_a_failed_copy_during_create_is_logged_not_fatal(rig: Rig) -> None:
    rig.world.copy_fail_zones = frozenset({rig.manchester})
    done = await rig.run("createSnapshot", volumeid=rig.gold.id, zoneids=rig.manchester)
    assert done["jobstatus"] == 1
    snap = done["jobresult"]["snapshot"]["id"]
    completed = rig.actions(snap, "SNAPSHOT.COPY")[-1]
    assert completed["description"] == f"Copying snapshot ID: {snap} failed"
    [row] = await rig.rows(id=snap, zoneid=rig.manchester, showunique="false")
    assert row["datastorestate"] == "Failed"  # not Ready: the DR copy is not there


async def test_copy_snapshot_has_no_started_and_completes_after_copy_latency(rig: Rig) -> None:
    snap = (await rig.run("createSnapshot", volumeid=rig.gold.id))["jobresult"]["snapshot"]["id"]
    first = await rig.submit("copySnapshot", id=snap, destzoneids=rig.manchester)
    await rig.step(JOB)
    [row] = await rig.rows(id=snap, zoneid=rig.manchester, showunique="false")
    assert row["datastorestate"] == "Creating"
    await rig.step(COPY)
    done = await rig.job(first["jobid"])
    assert done["jobstatus"] == 1
    result = done["jobresult"]["snapshot"]
    assert (result["zoneid"], result["datastorestate"]) == (rig.manchester, "Ready")
    assert "snapshottype" not in result  # QueryManagerImpl.listSnapshot: a list row
    events = rig.actions(snap, "SNAPSHOT.COPY")
    what = f"copying snapshot: {snap} to zones:  {rig.manchester}"
    assert [(e["status"], e["description"]) for e in events] == [
        ("Scheduled", what),
        ("Completed", f"Successfully completed copying snapshot. {what}"),
    ]


async def test_copy_snapshot_failing_everywhere_is_530_without_cserrorcode(rig: Rig) -> None:
    snap = (await rig.run("createSnapshot", volumeid=rig.gold.id))["jobresult"]["snapshot"]["id"]
    rig.world.copy_fail_zones = frozenset({rig.manchester})
    done = await rig.run("copySnapshot", id=snap, destzoneid=rig.manchester)
    assert (done["jobstatus"], done["jobresultcode"]) == (2, 530)
    assert done["jobresult"] == {
        "uuidList": [],
        "errorcode": 530,
        "errortext": "Failed to copy snapshot",
    }
    completed = rig.actions(snap, "SNAPSHOT.COPY")[-1]
    assert completed["description"].startswith("Error while copying snapshot. ")


async def test_copy_snapshot_partial_success_is_success(rig: Rig) -> None:
    edinburgh = rig.world.add_zone("zone-edinburgh", "Third zone").id
    snap = (await rig.run("createSnapshot", volumeid=rig.gold.id))["jobresult"]["snapshot"]["id"]
    rig.world.copy_fail_zones = frozenset({edinburgh})
    done = await rig.run("copySnapshot", id=snap, destzoneids=f"{edinburgh},{rig.manchester}")
    assert done["jobstatus"] == 1
    assert done["jobresult"]["snapshot"]["zoneid"] == rig.manchester  # a zone that made it
    states = {r["zoneid"]: r["datastorestate"] for r in await rig.rows(id=snap, showunique="false")}
    assert states == {rig.london: "Ready", rig.manchester: "Ready", edinburgh: "Failed"}
    # A retry copies again where it failed and keeps what is Ready.
    rig.world.copy_fail_zones = frozenset()
    again = await rig.run("copySnapshot", id=snap, destzoneids=f"{edinburgh},{rig.manchester}")
    assert again["jobstatus"] == 1
    [row] = await rig.rows(id=snap, zoneid=edinburgh, showunique="false")
    assert row["datastorestate"] == "Ready"


async def test_copy_snapshot_validates_inside_its_job(rig: Rig) -> None:
    rig.sim.jobs.latency = JOB * 10  # a slow backup: the copy's job runs first
    first = await rig.submit("createSnapshot", volumeid=rig.gold.id)
    await rig.step(0)  # its job is asleep, with that latency
    rig.sim.jobs.latency = JOB
    # Accepted at call time even though the snapshot is not backed up yet.
    early = await rig.submit("copySnapshot", id=first["id"], destzoneids=rig.manchester)
    await rig.step(JOB * 10 + 1)
    assert rig.world.snapshots[first["id"]].state == "BackedUp"
    failed = await rig.job(early["jobid"])
    assert (failed["jobstatus"], failed["jobresultcode"]) == (2, 431)
    assert failed["jobresult"]["errortext"] == "Snapshot is not backed up"
    assert "cserrorcode" not in failed["jobresult"]
    same = await rig.run("copySnapshot", id=first["id"], destzoneids=rig.london)
    assert same["jobresult"]["errortext"] == (
        "Please specify different source and destination zones."
    )
    both = await rig.run(
        "copySnapshot", id=first["id"], destzoneid=rig.manchester, destzoneids=rig.manchester
    )
    assert both["jobresultcode"] == 431
    # An unknown zone uuid never reaches the job: ParamProcessWorker refuses it.
    status, body = await rig.call.raw("copySnapshot", id=first["id"], destzoneids="nowhere")
    assert status == 431
    assert body["copysnapshotresponse"]["errortext"].startswith(
        "Unable to execute API command copysnapshot due to invalid value. "
        "Invalid parameter destzoneids value=nowhere"
    )


# -- deleteSnapshot -------------------------------------------------------------------------


async def test_delete_with_zoneid_removes_one_copy_then_destroys(rig: Rig) -> None:
    done = await rig.run("createSnapshot", volumeid=rig.gold.id, zoneids=rig.manchester)
    snap = done["jobresult"]["snapshot"]["id"]
    assert (await rig.run("deleteSnapshot", id=snap, zoneid=rig.manchester))["jobstatus"] == 1
    assert await rig.rows(id=snap, zoneid=rig.manchester) == []
    [left] = await rig.rows(id=snap, showunique="false")
    assert left["zoneid"] == rig.london
    assert rig.world.snapshots[snap].state == "BackedUp"
    assert (await rig.run("deleteSnapshot", id=snap, zoneid=rig.london))["jobstatus"] == 1
    assert rig.world.snapshots[snap].state == "Destroyed"
    assert await rig.rows(id=snap) == []  # destroyed snapshots are not listed
    again = await rig.run("deleteSnapshot", id=snap)
    assert again["jobresultcode"] == 431
    assert again["jobresult"]["errortext"].endswith("is already destroyed")
    events = rig.actions(snap, "SNAPSHOT.DELETE")
    assert [e["status"] for e in events[:3]] == ["Scheduled", "Started", "Completed"]
    assert events[1]["description"] == f"Deleting snapshot. Snapshot Id: {snap}"


async def test_deleting_a_copy_that_is_still_downloading_wins(rig: Rig) -> None:
    snap = (await rig.run("createSnapshot", volumeid=rig.gold.id))["jobresult"]["snapshot"]["id"]
    copy = await rig.submit("copySnapshot", id=snap, destzoneids=rig.manchester)
    await rig.step(JOB)  # the copy is Creating in Manchester
    delete = await rig.submit("deleteSnapshot", id=snap, zoneid=rig.manchester)
    await rig.step(JOB)
    assert (await rig.job(delete["jobid"]))["jobstatus"] == 1
    await rig.step(COPY)
    copied = await rig.job(copy["jobid"])
    assert (copied["jobstatus"], copied["jobresultcode"]) == (2, 530)  # its only zone lost
    assert await rig.rows(id=snap, zoneid=rig.manchester) == []


async def test_deleting_an_allocated_snapshot_fails_its_create_job(rig: Rig) -> None:
    first = await rig.submit("createSnapshot", volumeid=rig.gold.id)
    await rig.step(0)  # its job is asleep for JOB seconds
    rig.sim.jobs.latency = 0.0  # the delete's job runs before the create's
    delete = await rig.submit("deleteSnapshot", id=first["id"])
    await rig.step(JOB + 1)
    assert (await rig.job(delete["jobid"]))["jobstatus"] == 1
    created = await rig.job(first["jobid"])
    assert (created["jobstatus"], created["jobresultcode"]) == (2, 530)
    assert await rig.rows(id=first["id"]) == []


async def test_create_volume_needs_a_ready_copy_in_the_zone(rig: Rig) -> None:
    first = await rig.submit("createSnapshot", volumeid=rig.gold.id, zoneids=rig.manchester)
    await rig.step(JOB)  # Manchester still Creating
    status, body = await rig.call.raw("createVolume", snapshotid=first["id"], zoneid=rig.manchester)
    assert status == 431, body
    await rig.step(COPY)
    made = await rig.run("createVolume", snapshotid=first["id"], zoneid=rig.manchester)
    assert made["jobstatus"] == 1


# -- createSnapshot refusals at call time ---------------------------------------------------


async def test_create_in_a_suspended_project_is_531(rig: Rig) -> None:
    vol, proj = project_volume(rig)
    await rig.run("suspendProject", id=proj)
    status, body = await rig.call.raw("createSnapshot", volumeid=vol)
    assert status == 531
    err = body["createsnapshotresponse"]
    assert err["cserrorcode"] == 4365
    assert err["errortext"] == (
        f"Can't add resources to the project id={rig.world.db_id(proj)} in state=Suspended "
        "as it's no longer active"
    )


async def test_create_of_a_volume_not_ready_and_unknown_zoneids_are_431(rig: Rig) -> None:
    rig.gold.state = "Allocated"
    status, body = await rig.call.raw("createSnapshot", volumeid=rig.gold.id)
    assert status == 431
    assert (
        "is not in Ready state but Allocated. Cannot take snapshot."
        in (body["createsnapshotresponse"]["errortext"])
    )
    rig.gold.state = "Ready"
    # A well-formed uuid naming no zone is ParamProcessWorker's 431 (a malformed value of a
    # 4.19 parameter is dropped there instead: it is not the caller's typo CloudStack sees).
    nowhere = "00000000-0000-4000-8000-000000000000"
    status, body = await rig.call.raw("createSnapshot", volumeid=rig.gold.id, zoneids=nowhere)
    assert status == 431
    assert (
        f"Invalid parameter zoneids value={nowhere}"
        in (body["createsnapshotresponse"]["errortext"])
    )
    assert rig.world.snapshots == {}  # nothing allocated by a refused call


async def test_snapshot_limit_is_535_with_cloudstacks_text(rig: Rig) -> None:
    vol, proj = project_volume(rig)
    limits = await rig.call("listResourceLimits", projectid=proj, resourcetype=3)
    assert limits["listresourcelimitsresponse"]["resourcelimit"][0]["max"] == 20
    await rig.call("updateResourceLimit", projectid=proj, resourcetype=3, max=2)
    for _ in range(2):
        assert (await rig.run("createSnapshot", volumeid=vol))["jobstatus"] == 1
    status, body = await rig.call.raw("createSnapshot", volumeid=vol)
    assert status == 535
    err = body["createsnapshotresponse"]
    assert err["cserrorcode"] == 4370
    assert err["errortext"].startswith(
        "Maximum amount of resources of Type = 'snapshot', tag = 'null' for "
        "Project Name = project-alpha in Domain Id = "
    )
    assert err["errortext"].endswith(
        "is exceeded: Account Resource Limit = 2, Current Account Resource Amount = 2, "
        "Current Account Resource Reservation = 0, Requested Resource Amount = 1."
    )
    # A destroyed snapshot no longer counts.
    snap = (await rig.rows(volumeid=vol, projectid=proj))[0]["id"]
    await rig.run("deleteSnapshot", id=snap)
    assert (await rig.run("createSnapshot", volumeid=vol))["jobstatus"] == 1


async def test_unset_account_limit_is_max_account_snapshots(rig: Rig) -> None:
    dept = rig.world.account_named("dept-finance")
    vol = next(v for v in rig.world.volumes.values() if v.account_id == dept.id)
    listed = await rig.call(
        "listResourceLimits", account=dept.name, domainid=dept.domainid, resourcetype=3
    )
    assert listed["listresourcelimitsresponse"]["resourcelimit"][0]["max"] == 20
    rig.world.limits[(dept.id, 3)] = 0
    status, body = await rig.call.raw("createSnapshot", volumeid=vol.id)
    assert status == 535
    assert "for Account Name = dept-finance in" in body["createsnapshotresponse"]["errortext"]


async def test_injected_faults_still_apply_to_snapshot_commands() -> None:
    clock = SteppedClock()
    faults = FaultPlan(clock, seed=3)
    sim = Simulator(World.demo(7), clock=clock, faults=faults, job_latency=JOB)
    try:
        call = Caller(sim)
        vol = next(v for v in sim.world.volumes.values() if v.name == "ledger-db-data")
        for command in ("createSnapshot", "copySnapshot", "deleteSnapshot", "listSnapshots"):
            faults.set(command, error_rate=1.0, errorcode=530)
        status, body = await call.raw("createSnapshot", volumeid=vol.id)
        assert (status, body["createsnapshotresponse"]["errorcode"]) == (530, 530)
        for command in ("copySnapshot", "deleteSnapshot", "listSnapshots"):
            status, _ = await call.raw(command, id="x", destzoneids="y")
            assert status == 530
        assert sim.world.snapshots == {}
    finally:
        await sim.stop()


# -- event accounts, Started per command ----------------------------------------------------


async def test_event_accounts_follow_the_call_context(rig: Rig) -> None:
    vol, proj = project_volume(rig)
    project_account = rig.world.projects[proj].account_id
    admin = rig.world.admin.id
    plain = await rig.run("createSnapshot", volumeid=vol)
    snap = plain["jobresult"]["snapshot"]["id"]
    accounts = {e["status"]: e["account"] for e in rig.actions(snap, "SNAPSHOT.CREATE")}
    assert accounts == {
        "Created": admin,
        "Scheduled": project_account,  # the resource owner's
        "Started": admin,
        "Completed": admin,
    }
    scoped = await rig.run("createSnapshot", volumeid=vol, projectid=proj)
    snap = scoped["jobresult"]["snapshot"]["id"]
    assert {e["account"] for e in rig.actions(snap, "SNAPSHOT.CREATE")} == {project_account}
    # suspendProject: the method sets the project after Started is recorded.
    await rig.run("suspendProject", id=proj)
    suspend = {e["status"]: e["account"] for e in rig.actions(proj, "PROJECT.SUSPEND")}
    assert suspend == {
        "Scheduled": project_account,
        "Started": admin,
        "Completed": project_account,
    }


async def test_create_tags_has_no_started_and_delete_volume_is_volume_destroy(rig: Rig) -> None:
    done = await rig.run(
        "createTags",
        resourceids=rig.gold.id,
        resourcetype="Volume",
        **{"tags[0].key": "csfabric:x", "tags[0].value": "1"},
    )
    assert done["jobstatus"] == 1
    tags = [e.body for e in rig.sim.emitter.emitted if e.event_type == "CREATE_TAGS"]
    assert [(e["status"], e["description"]) for e in tags] == [
        ("Scheduled", "creating tags"),
        ("Completed", "Successfully completed creating resource tags"),
    ]
    offering = next(o.id for o in rig.world.disk_offerings.values() if o.iscustomized)
    made = await rig.run("createVolume", diskofferingid=offering, zoneid=rig.london, size=1)
    vol = made["jobresult"]["volume"]["id"]
    await rig.call("deleteVolume", id=vol)
    kinds = {e.event_type for e in rig.sim.emitter.emitted if e.body.get("entityuuid") == vol}
    assert "VOLUME.DESTROY" in kinds
    assert "VOLUME.DELETE" not in kinds
    [destroy] = rig.actions(vol, "VOLUME.DESTROY")
    assert destroy["description"] == (
        f"Successfully completed destroying a volume. Volume Id: {vol}"
    )


async def test_paging_counts_rows_and_tags_filter_per_store_rows(rig: Rig) -> None:
    for n in range(3):
        tag = {"tags[0].key": "csfabric:key", "tags[0].value": f"k{n}"}
        await rig.run("createSnapshot", volumeid=rig.gold.id, zoneids=rig.manchester, **tag)
    every = (await rig.call("listSnapshots", showunique="false"))["listsnapshotsresponse"]
    page = (await rig.call("listSnapshots", showunique="false", page=2, pagesize=4))[
        "listsnapshotsresponse"
    ]
    assert page["count"] == every["count"] == 6
    assert page["snapshot"] == every["snapshot"][4:6]
    one = await rig.rows(
        showunique="false", **{"tags[0].key": "csfabric:key", "tags[0].value": "k1"}
    )
    assert len(one) == 2
    assert {t["value"] for r in one for t in r["tags"]} == {"k1"}
