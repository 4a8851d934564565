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
