"""Contract: tags, resource limits and volumes as CloudStack's service layer answers them.

createTags' unique (resource, type, key) (TaggedResourceManagerImpl), deployVirtualMachine's
over-limit 535 counted against a project's own limit (ResourceLimitManagerImpl), and
createVolume's disk offering (VolumeApiServiceImpl.allocVolume) shown in VolumeResponse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from csfabric.cloudstack.simulator import Simulator, World
from csfabric.cloudstack.simulator._registry import COMMANDS

from tests.contract._scenario import Caller

Json = dict[str, Any]


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(World.demo(5), job_latency=0.0)
    yield simulator
    await simulator.stop()


def _tags(*pairs: tuple[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, (key, value) in enumerate(pairs):
        out |= {f"tags[{i}].key": key, f"tags[{i}].value": value}
    return out


def _job(done: Json) -> Json:
    inner: Json = done["queryasyncjobresultresponse"]
    return inner


# -- createTags -----------------------------------------------------------------------------


async def test_a_key_the_resource_already_has_fails_the_job_and_keeps_no_tag(
    sim: Simulator,
) -> None:
    call = Caller(sim)
    vol = next(v for v in sim.world.volumes.values() if v.name == "ledger-db-data")
    before = [(t.key, t.value) for t in sim.world.tags_for(vol.id)]
    [(key, _)] = before  # the demo tags it csfabric:dr-tier=gold
    _, done = await call.job(
        "createTags",
        resourceids=vol.id,
        resourcetype="Volume",
        **_tags(("csfabric:new", "1"), (key, "silver")),
    )
    job = _job(done)
    assert job["jobstatus"] == 2
    assert job["jobresult"] == {
        "uuidList": [],
        "errorcode": 530,
        "errortext": f"tag {key} already on Volume with id {vol.id}",
    }
    # One transaction: the new key is not kept either, and the old value is untouched.
    assert [(t.key, t.value) for t in sim.world.tags_for(vol.id)] == before


async def test_a_resource_named_twice_is_the_same_unique_key(sim: Simulator) -> None:
    call = Caller(sim)
    vm = next(iter(sim.world.vms.values()))
    _, done = await call.job(
        "createTags",
        resourceids=f"{vm.id},{vm.id}",
        resourcetype="UserVm",
        **_tags(("csfabric:twice", "x")),
    )
    assert _job(done)["jobresult"]["errortext"] == (
        f"tag csfabric:twice already on UserVm with id {vm.id}"
    )
    assert not [t for t in sim.world.tags_for(vm.id) if t.key == "csfabric:twice"]


async def test_new_keys_on_several_resources_are_all_kept(sim: Simulator) -> None:
    call = Caller(sim)
    a, b = list(sim.world.vms.values())[:2]
    _, done = await call.job(
        "createTags",
        resourceids=f"{a.id},{b.id}",
        resourcetype="UserVm",
        **_tags(("csfabric:k1", "v1"), ("csfabric:k2", "v2")),
    )
    assert _job(done)["jobresult"] == {"success": True}
    for vm in (a, b):
        kept = {(t.key, t.value, t.resourcetype) for t in sim.world.tags_for(vm.id)}
        assert {("csfabric:k1", "v1", "UserVm"), ("csfabric:k2", "v2", "UserVm")} <= kept


# -- deployVirtualMachine's limit -----------------------------------------------------------


async def _deploy(call: Caller, sim: Simulator, **params: Any) -> tuple[int, Json]:
    return await call.raw(
        "deployVirtualMachine",
        zoneid=sim.world.zone_named("zone-london").id,
        serviceofferingid=sim.world.service_offering_id,
        templateid=sim.world.template_id,
        **params,
    )


async def test_a_project_over_its_vm_limit_is_535_with_cloudstacks_text(sim: Simulator) -> None:
    call = Caller(sim)
    proj = next(p for p in sim.world.projects.values() if p.name == "project-alpha")
    live = sum(1 for v in sim.world.vms.values() if v.account_id == proj.account_id)
    assert live > 0
    # The limit is set by project id (updateResourceLimit projectid=…): it must be the one
    # the deploy checks, not the project account's (unset) one.
    await call("updateResourceLimit", projectid=proj.id, resourcetype=0, max=live + 1)
    status, _ = await _deploy(call, sim, projectid=proj.id)
    assert status == 200
    count = len(sim.world.vms)
    status, body = await _deploy(call, sim, projectid=proj.id)
    assert status == 535
    err = body["deployvirtualmachineresponse"]
    assert err["cserrorcode"] == 4370
    assert err["errortext"].startswith(
        "Maximum amount of resources of Type = 'user_vm', tag = 'null' for "
        "Project Name = project-alpha in Domain Id = "
    )
    assert err["errortext"].endswith(
        f"is exceeded: Account Resource Limit = {live + 1}, Current Account Resource Amount = "
        f"{live + 1}, Current Account Resource Reservation = 0, Requested Resource Amount = 1."
    )
    assert len(sim.world.vms) == count  # nothing allocated by the refused call


async def test_a_destroyed_vm_no_longer_counts_against_the_limit(sim: Simulator) -> None:
    dept = sim.world.account_named("dept-finance")
    vm = next(v for v in sim.world.vms.values() if v.account_id == dept.id)
    live = sum(1 for v in sim.world.vms.values() if v.account_id == dept.id)
    sim.world.limits[(dept.id, 0)] = live
    dept_call = Caller(sim, dept.users[0].username)
    status, body = await _deploy(dept_call, sim)
    assert status == 535
    assert "for Account Name = dept-finance in" in body["deployvirtualmachineresponse"]["errortext"]
    _, done = await dept_call.job("destroyVirtualMachine", id=vm.id)
    assert _job(done)["jobstatus"] == 1
    status, _ = await _deploy(dept_call, sim)
    assert status == 200


# -- createVolume and VolumeResponse's disk offering ----------------------------------------


def _offering(sim: Simulator, name: str) -> str:
    return next(o.id for o in sim.world.disk_offerings.values() if o.name == name)


async def _create_volume(call: Caller, **params: Any) -> Json:
    _, done = await call.job("createVolume", **params)
    return _job(done)


async def test_a_volume_takes_its_size_and_name_from_the_disk_offering(sim: Simulator) -> None:
    call = Caller(sim)
    london = sim.world.zone_named("zone-london").id
    medium = _offering(sim, "Medium")
    job = await _create_volume(call, diskofferingid=medium, zoneid=london, name="fixed")
    vol = job["jobresult"]["volume"]
    assert vol["size"] == 20 * 1024**3
    assert (vol["diskofferingid"], vol["diskofferingname"]) == (medium, "Medium")
    assert vol["diskofferingdisplaytext"] == "Medium Disk, 20 GB"
    [listed] = (await call("listVolumes", id=vol["id"]))["listvolumesresponse"]["volume"]
    assert (listed["diskofferingid"], listed["size"]) == (medium, 20 * 1024**3)


async def test_size_is_for_a_custom_offering_only(sim: Simulator) -> None:
    call = Caller(sim)
    london = sim.world.zone_named("zone-london").id
    custom, small = _offering(sim, "Custom"), _offering(sim, "Small")
    job = await _create_volume(call, diskofferingid=custom, zoneid=london, size=7)
    assert job["jobresult"]["volume"]["size"] == 7 * 1024**3
    assert job["jobresult"]["volume"]["diskofferingname"] == "Custom"
    refusals = {
        (small, "3"): "This disk offering does not allow custom size",
        (custom, None): "This disk offering requires a custom size specified",
        (custom, "0"): "Disk size must be larger than 0",
        (custom, "2048"): "Volume size: 2048 GB is out of allowed range. Min: 1. Max: 1024",
    }
    count = len(sim.world.volumes)
    for (offering, size), text in refusals.items():
        extra = {"size": size} if size is not None else {}
        status, body = await call.raw(
            "createVolume", diskofferingid=offering, zoneid=london, **extra
        )
        assert (status, body["createvolumeresponse"]["errortext"]) == (431, text)
    assert len(sim.world.volumes) == count  # nothing allocated by a refused call


async def test_a_volume_from_a_snapshot_keeps_the_source_offering(sim: Simulator) -> None:
    call = Caller(sim)
    gold = next(v for v in sim.world.volumes.values() if v.name == "ledger-db-data")
    large = _offering(sim, "Large")  # the seeded 100 GiB disk's
    _, done = await call.job("createSnapshot", volumeid=gold.id)
    snap = _job(done)["jobresult"]["snapshot"]["id"]
    job = await _create_volume(call, snapshotid=snap)
    vol = job["jobresult"]["volume"]
    assert (vol["diskofferingid"], vol["size"], vol["snapshotid"]) == (large, gold.size, snap)
    status, body = await call.raw("createVolume", snapshotid=snap, diskofferingid=large)
    assert status == 431
    assert body["createvolumeresponse"]["errortext"] == (
        "Disk Offering ID cannot be passed whilst creating volume from snapshot other than "
        "ROOT disk snapshots"
    )


async def test_an_attached_volume_shows_when_in_every_answer(sim: Simulator) -> None:
    call = Caller(sim)
    gold = next(v for v in sim.world.volumes.values() if v.name == "ledger-db-data")
    vm = next(v for v in sim.world.vms.values() if v.account_id == gold.account_id)
    _, done = await call.job("attachVolume", id=gold.id, virtualmachineid=vm.id)
    attached = _job(done)["jobresult"]["volume"]["attached"]
    assert attached == sim.world.volumes[gold.id].attached.strftime("%Y-%m-%dT%H:%M:%S+0000")
    [listed] = (await call("listVolumes", id=gold.id))["listvolumesresponse"]["volume"]
    assert listed["attached"] == attached
    _, done = await call.job("detachVolume", id=gold.id)
    assert "attached" not in _job(done)["jobresult"]["volume"]
    [listed] = (await call("listVolumes", id=gold.id))["listvolumesresponse"]["volume"]
    assert "attached" not in listed


# -- createSnapshotPolicy -------------------------------------------------------------------


def _policy_params(vol_id: str, **over: Any) -> dict[str, Any]:
    base = {"volumeid": vol_id, "intervaltype": "DAILY", "maxsnaps": 3}
    return base | {"schedule": "30:02", "timezone": "Europe/London"} | over


async def test_a_second_policy_of_the_same_interval_updates_the_first(sim: Simulator) -> None:
    call = Caller(sim)
    gold = next(v for v in sim.world.volumes.values() if v.name == "ledger-db-data")
    manchester = sim.world.zone_named("zone-manchester").id
    first = await call("createSnapshotPolicy", **_policy_params(gold.id, zoneids=manchester))
    made = first["createsnapshotpolicyresponse"]["snapshotpolicy"]
    again = await call("createSnapshotPolicy", **_policy_params(gold.id, schedule="0:4"))
    changed = again["createsnapshotpolicyresponse"]["snapshotpolicy"]
    assert changed["id"] == made["id"]
    assert (changed["schedule"], changed["intervaltype"]) == ("0:4", 1)
    assert [z["id"] for z in changed["zone"]] == [manchester]  # no zoneids: zones kept
    weekly = await call(
        "createSnapshotPolicy", **_policy_params(gold.id, intervaltype="weekly", schedule="0:4:7")
    )
    assert weekly["createsnapshotpolicyresponse"]["snapshotpolicy"]["id"] != made["id"]
    listed = await call("listSnapshotPolicies", volumeid=gold.id)
    assert listed["listsnapshotpoliciesresponse"]["count"] == 2


async def test_policy_tags_are_the_policys_own(sim: Simulator) -> None:
    call = Caller(sim)
    gold = next(v for v in sim.world.volumes.values() if v.name == "ledger-db-data")
    body = await call(
        "createSnapshotPolicy", **_policy_params(gold.id, **_tags(("csfabric:plan", "p1")))
    )
    policy = body["createsnapshotpolicyresponse"]["snapshotpolicy"]
    [tag] = policy["tags"]
    assert (tag["key"], tag["resourcetype"], tag["resourceid"]) == (
        "csfabric:plan",
        "SnapshotPolicy",
        policy["id"],
    )
    # The same key again is TaggedResourceManagerImpl's unique-key failure, synchronously.
    status, err = await call.raw(
        "createSnapshotPolicy", **_policy_params(gold.id, **_tags(("csfabric:plan", "p2")))
    )
    assert (status, err["createsnapshotpolicyresponse"]["errortext"]) == (
        530,
        f"tag csfabric:plan already on SnapshotPolicy with id {policy['id']}",
    )


async def test_policy_refusals_are_createpolicys(sim: Simulator) -> None:
    call = Caller(sim)
    gold = next(v for v in sim.world.volumes.values() if v.name == "ledger-db-data")
    desc = f'Volume {{"id":"{gold.id}","name":"ledger-db-data","volumeType":"DATADISK"}}'
    refusals = {
        "intervaltype=yearly": (
            {"intervaltype": "yearly"},
            "Unsupported interval type yearly",
        ),
        "short schedule": (
            {"intervaltype": "weekly", "schedule": "0:4"},
            f"{desc} has an invalid schedule [0:4] for interval type [weekly].",
        ),
        "day 29": (
            {"intervaltype": "MONTHLY", "schedule": "0:4:29"},
            f"{desc} has an invalid schedule [0:4:29] for interval type [MONTHLY].",
        ),
        "maxsnaps 0": (
            {"maxsnaps": 0},
            f"maxSnaps [0] for volume {desc} should be greater than 0.",
        ),
        "maxsnaps 9": (
            {"maxsnaps": 9},
            f"maxSnaps [9] for volume {desc} exceeds limit [8] for interval type [DAILY].",
        ),
    }
    for case, (over, text) in refusals.items():
        status, body = await call.raw("createSnapshotPolicy", **_policy_params(gold.id, **over))
        assert (status, body["createsnapshotpolicyresponse"]["errortext"]) == (431, text), case
    assert sim.world.snapshot_policies == {}


# -- parameters declared where each command is ----------------------------------------------


async def test_every_command_declares_its_parameters_in_its_decorator() -> None:
    for cmd in COMMANDS.values():
        declared = {p.name for p in cmd.params}
        assert cmd.params, f"{cmd.name} declares no parameters"
        assert set(cmd.required) <= declared, cmd.name
        assert cmd.description, cmd.name
        assert cmd.description != cmd.name, cmd.name


async def test_list_apis_describes_the_snapshot_commands_own_parameters(sim: Simulator) -> None:
    body = (await Caller(sim)("listApis"))["listapisresponse"]
    apis = {a["name"]: {p["name"]: p for p in a["params"]} for a in body["api"]}
    assert apis["createSnapshot"]["volumeid"]["required"] is True
    assert apis["createSnapshot"]["zoneids"]["since"] == "4.19.0"
    assert apis["deleteSnapshot"]["zoneid"]["since"] == "4.19.0"
    assert set(apis["copySnapshot"]) == {"id", "destzoneid", "destzoneids", "sourcezoneid"}
    assert apis["createSnapshotPolicy"]["maxsnaps"]["type"] == "integer"
    assert apis["updateResourceLimit"]["resourcetype"]["required"] is True


async def test_snapshot_ids_are_checked_before_the_handler(sim: Simulator) -> None:
    call = Caller(sim)
    nowhere = "00000000-0000-4000-8000-000000000000"
    for command, params in {
        "deleteSnapshot": {"id": nowhere},
        "copySnapshot": {"id": nowhere, "destzoneids": nowhere},
        "createSnapshot": {"volumeid": nowhere},
        "suspendProject": {"id": nowhere},
    }.items():
        status, body = await call.raw(command, **params)
        err = body[f"{command.lower()}response"]
        assert (status, err["cserrorcode"]) == (431, 9999), command
        assert f"Invalid parameter {next(iter(params))} value={nowhere}" in err["errortext"]


async def test_a_malformed_zone_of_delete_snapshot_is_dropped_as_a_4_19_parameter(
    sim: Simulator,
) -> None:
    # ParamProcessWorker: a malformed uuid of a parameter with ``since`` becomes null, so
    # the delete is for every zone, as CloudStack does it.
    call = Caller(sim)
    gold = next(v for v in sim.world.volumes.values() if v.name == "ledger-db-data")
    _, done = await call.job("createSnapshot", volumeid=gold.id)
    snap = _job(done)["jobresult"]["snapshot"]["id"]
    _, done = await call.job("deleteSnapshot", id=snap, zoneid="not-a-uuid")
    assert _job(done)["jobstatus"] == 1
    assert sim.world.snapshots[snap].state == "Destroyed"


async def test_a_restore_after_the_source_volume_is_gone_keeps_its_size_and_offering(
    sim: Simulator,
) -> None:
    call = Caller(sim)
    gold = next(v for v in sim.world.volumes.values() if v.name == "ledger-db-data")
    size, offering = gold.size, gold.diskofferingid
    _, done = await call.job("createSnapshot", volumeid=gold.id)
    snap = _job(done)["jobresult"]["snapshot"]["id"]
    await call("deleteVolume", id=gold.id)
    [row] = (await call("listSnapshots", id=snap))["listsnapshotsresponse"]["snapshot"]
    assert (row["virtualsize"], row["volumetype"]) == (size, "DATADISK")
    vol = (await _create_volume(call, snapshotid=snap))["jobresult"]["volume"]
    assert (vol["size"], vol["diskofferingid"]) == (size, offering)


async def test_a_root_snapshot_takes_an_offering_no_smaller_than_itself(sim: Simulator) -> None:
    call = Caller(sim)
    root = next(v for v in sim.world.volumes.values() if v.type == "ROOT")
    _, done = await call.job("createSnapshot", volumeid=root.id)
    snap = _job(done)["jobresult"]["snapshot"]["id"]
    custom = _offering(sim, "Custom")
    status, body = await call.raw("createVolume", snapshotid=snap, diskofferingid=custom, size=1)
    assert (status, body["createvolumeresponse"]["errortext"]) == (
        431,
        "Invalid size for volume creation: 1GB, snapshot size is: 2GB",
    )
    job = await _create_volume(call, snapshotid=snap, diskofferingid=custom, size=5)
    assert job["jobresult"]["volume"]["size"] == 5 * 1024**3


async def test_a_project_over_its_volume_limit_is_535(sim: Simulator) -> None:
    call = Caller(sim)
    proj = next(p for p in sim.world.projects.values() if p.name == "project-alpha")
    owned = sum(1 for v in sim.world.volumes.values() if v.account_id == proj.account_id)
    await call("updateResourceLimit", projectid=proj.id, resourcetype=2, max=owned)
    london = sim.world.zone_named("zone-london").id
    status, body = await call.raw(
        "createVolume", diskofferingid=_offering(sim, "Small"), zoneid=london, projectid=proj.id
    )
    assert status == 535
    assert body["createvolumeresponse"]["errortext"].startswith(
        "Maximum amount of resources of Type = 'volume', tag = 'null' for "
        "Project Name = project-alpha in Domain Id = "
    )
