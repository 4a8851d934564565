"""Discovery and strictness: what a generic client learns from the simulator, and the ids
CloudStack would refuse (ParamProcessWorker's 431) refused the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from csfabric.cloudstack.simulator import Simulator, World
from csfabric.cloudstack.simulator._registry import COMMANDS

from tests.contract._scenario import Caller, run_all

INVALID = (
    "Unable to execute API command {cmd} due to invalid value. Invalid parameter {name} "
    "value={value} due to incorrect long value format, or entity does not exist or due to "
    "incorrect parameter annotation for the field in api cmd class."
)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(World.demo(3), job_latency=0.0)
    yield simulator
    await simulator.stop()


async def test_list_apis_describes_every_registered_command(sim: Simulator) -> None:
    body = (await Caller(sim)("listApis"))["listapisresponse"]
    apis = {a["name"]: a for a in body["api"]}
    assert set(apis) == set(COMMANDS)
    assert body["count"] == len(COMMANDS)
    deploy = apis["deployVirtualMachine"]
    assert deploy["isasync"] is True
    params = {p["name"]: p for p in deploy["params"]}
    assert {n for n, p in params.items() if p["required"]} == {
        "zoneid",
        "serviceofferingid",
        "templateid",
    }
    assert params["serviceofferingid"]["type"] == "uuid"
    assert params["networkids"]["type"] == "list"
    assert apis["listTemplates"]["isasync"] is False
    assert [r["name"] for r in deploy["response"]] == ["jobid", "jobstatus"]
    # Every list command's item key is the one its answer really uses.
    assert [r["name"] for r in apis["listTemplates"]["response"]] == ["count", "template"]
    assert apis["listSnapshotPolicies"]["response"][1]["name"] == "snapshotpolicy"
    assert [p["name"] for p in apis["listTemplates"]["params"] if p["required"]] == [
        "templatefilter"
    ]
    # The snapshot commands describe the parameters their own decorators declare.
    snap = {p["name"]: p for p in apis["createSnapshot"]["params"]}
    assert snap["volumeid"]["required"]
    assert snap["zoneids"]["since"] == "4.19.0"
    assert all(a["description"] for a in apis.values())


async def test_list_apis_response_keys_are_the_answers_keys(sim: Simulator) -> None:
    apis = {a["name"]: a for a in (await Caller(sim)("listApis"))["listapisresponse"]["api"]}
    records = await run_all(Simulator(World.demo(3), job_latency=0.0))
    checked = 0
    for name, record in records.items():
        if name not in apis or COMMANDS[name].isasync:
            continue
        inner = record["response"][f"{name.lower()}response"]
        if inner:
            assert set(inner) == {r["name"] for r in apis[name]["response"]}, name
            checked += 1
    assert checked >= 15


async def test_list_apis_by_name_and_unknown_name(sim: Simulator) -> None:
    call = Caller(sim)
    one = (await call("listApis", name="attachVolume"))["listapisresponse"]
    assert one["count"] == 1
    assert one["api"][0]["name"] == "attachVolume"
    status, body = await call.raw("listApis", name="noSuchApi")
    assert status == 431
    assert "unable to find an api by that name: noSuchApi" in body["listapisresponse"]["errortext"]


@pytest.mark.parametrize(
    ("command", "params", "bad"),
    [
        ("deployVirtualMachine", {"serviceofferingid": "small"}, "serviceofferingid"),
        ("deployVirtualMachine", {"templateid": "ubuntu"}, "templateid"),
        ("deployVirtualMachine", {"zoneid": "00000000-0000-4000-8000-000000000000"}, "zoneid"),
        ("listVirtualMachines", {"id": "no-such-vm"}, "id"),
        ("createSnapshot", {"volumeid": "11111111-1111-4111-8111-111111111111"}, "volumeid"),
        ("queryAsyncJobResult", {"jobid": "22222222-2222-4222-8222-222222222222"}, "jobid"),
        ("attachVolume", {"id": "-1", "virtualmachineid": "-1"}, "id"),
    ],
)
async def test_an_id_naming_nothing_of_its_kind_is_cloudstacks_431(
    sim: Simulator, command: str, params: dict[str, str], bad: str
) -> None:
    w = sim.world
    base = {
        "deployVirtualMachine": {
            "zoneid": w.zone_named("zone-london").id,
            "serviceofferingid": w.service_offering_id,
            "templateid": w.template_id,
        }
    }.get(command, {})
    vms = len(w.vms)
    status, body = await Caller(sim).raw(command, **(base | params))
    assert status == 431
    err = body[f"{command.lower()}response"]
    assert err["cserrorcode"] == 9999
    assert err["errortext"] == INVALID.format(cmd=command.lower(), name=bad, value=params[bad])
    assert len(w.vms) == vms


async def test_projectid_minus_one_still_lists_every_project(sim: Simulator) -> None:
    vms = (await Caller(sim)("listVirtualMachines", projectid="-1"))["listvirtualmachinesresponse"]
    owners = {v["project"] for v in vms["virtualmachine"]}
    assert owners == {p.name for p in sim.world.projects.values()}


async def test_an_id_of_the_wrong_kind_is_refused(sim: Simulator) -> None:
    # A zone's uuid is well-formed but names no service offering.
    zone = sim.world.zone_named("zone-london").id
    status, body = await Caller(sim).raw(
        "deployVirtualMachine", zoneid=zone, serviceofferingid=zone, templateid=zone
    )
    assert status == 431
    assert f"Invalid parameter serviceofferingid value={zone}" in str(body)


async def test_list_templates_needs_templatefilter_and_covers_both_zones(sim: Simulator) -> None:
    call = Caller(sim)
    status, body = await call.raw("listTemplates")
    assert status == 431
    assert "due to missing parameter templatefilter" in body["listtemplatesresponse"]["errortext"]
    rows = (await call("listTemplates", templatefilter="executable"))["listtemplatesresponse"]
    by_zone = {(t["name"], t["zonename"]) for t in rows["template"]}
    for zone in ("zone-london", "zone-manchester"):
        assert ("CentOS 5.6 (64-bit) no GUI (Simulator)", zone) in by_zone
    assert (await call("listTemplates", templatefilter="self")) == {"listtemplatesresponse": {}}


async def test_deploy_in_the_dr_zone_uses_its_shared_network(sim: Simulator) -> None:
    call = Caller(sim)
    w = sim.world
    manchester = w.zone_named("zone-manchester").id
    medium = next(o for o in w.service_offerings.values() if o.name == "Medium Instance")
    _, done = await call.job(
        "deployVirtualMachine",
        zoneid=manchester,
        serviceofferingid=medium.id,
        templateid=w.template_id,
        startvm="false",
    )
    vm = done["queryasyncjobresultresponse"]["jobresult"]["virtualmachine"]
    assert (vm["zonename"], vm["state"], vm["memory"]) == ("zone-manchester", "Stopped", 1024)
    nets = (await call("listNetworks", zoneid=manchester))["listnetworksresponse"]["network"]
    assert vm["nic"][0]["networkid"] in {n["id"] for n in nets}
    assert all(n["zoneid"] == manchester for n in nets)


async def test_attach_and_detach_with_cloudstacks_checks(sim: Simulator) -> None:
    call = Caller(sim)
    w = sim.world
    vol = next(v for v in w.volumes.values() if v.name == "scratch-space")
    vm = next(v for v in w.vms.values() if v.account_id == w.admin.id)
    _, done = await call.job("attachVolume", id=vol.id, virtualmachineid=vm.id)
    attached = done["queryasyncjobresultresponse"]["jobresult"]["volume"]
    assert (attached["virtualmachineid"], attached["deviceid"]) == (vm.id, 1)
    # Attaching it again fails inside the job, with VolumeApiServiceImpl's words.
    _, again = await call.job("attachVolume", id=vol.id, virtualmachineid=vm.id)
    failed = again["queryasyncjobresultresponse"]
    assert (failed["jobstatus"], failed["jobresultcode"]) == (2, 431)
    assert failed["jobresult"]["errortext"] == (
        "Please specify a volume that is not attached to any VM."
    )
    _, detached = await call.job("detachVolume", id=vol.id)
    assert "virtualmachineid" not in detached["queryasyncjobresultresponse"]["jobresult"]["volume"]
    kinds = [(e.type, e.state) for e in w.events if e.resourceid == vol.id]
    assert ("VOLUME.ATTACH", "Completed") in kinds
    assert ("VOLUME.DETACH", "Completed") in kinds
    _, not_attached = await call.job("detachVolume", id=vol.id)
    assert not_attached["queryasyncjobresultresponse"]["jobresult"]["errortext"] == (
        "The specified volume is not attached to a VM."
    )


async def test_snapshot_policies_list_update_delete(sim: Simulator) -> None:
    call = Caller(sim)
    vol = next(v for v in sim.world.volumes.values() if v.name == "ledger-db-data")
    created = await call(
        "createSnapshotPolicy",
        volumeid=vol.id,
        intervaltype="HOURLY",
        maxsnaps=8,
        schedule="15",
        timezone="UTC",
    )
    pid = created["createsnapshotpolicyresponse"]["snapshotpolicy"]["id"]
    listed = (await call("listSnapshotPolicies", volumeid=vol.id))["listsnapshotpoliciesresponse"]
    assert [p["id"] for p in listed["snapshotpolicy"]] == [pid]
    _, done = await call.job("updateSnapshotPolicy", id=pid, fordisplay="false")
    assert done["queryasyncjobresultresponse"]["jobresult"]["snapshotpolicy"]["id"] == pid
    assert await call("deleteSnapshotPolicies", ids=pid) == {
        "deletesnapshotpoliciesresponse": {"success": True}
    }
    status, body = await call.raw("deleteSnapshotPolicies", id=pid)
    assert status == 431
    assert f"Invalid parameter id value={pid}" in str(body)


async def test_list_async_jobs_and_accounts_show_no_keys(sim: Simulator) -> None:
    call = Caller(sim)
    w = sim.world
    await call.job(
        "deployVirtualMachine",
        zoneid=w.zone_named("zone-london").id,
        serviceofferingid=w.service_offering_id,
        templateid=w.template_id,
    )
    jobs = (await call("listAsyncJobs"))["listasyncjobsresponse"]["asyncjobs"]
    assert [j["cmd"] for j in jobs] == ["org.apache.cloudstack.api.command.user.vm.DeployVMCmd"]
    accounts = await call("listAccounts", listall="true")
    text = str(accounts)
    for keys in sim.keys().values():
        assert keys["apikey"] not in text
        assert keys["secretkey"] not in text
    user = Caller(sim, "user")
    mine = (await user("listAccounts"))["listaccountsresponse"]["account"]
    assert [a["name"] for a in mine] == ["user"]


async def test_a_dr_plan_redeploys_in_manchester_from_a_copied_snapshot(sim: Simulator) -> None:
    """What a recovery plan does: the same template id, a VM in the DR zone, the data disk
    restored there from the snapshot's copy and attached."""
    call = Caller(sim)
    w = sim.world
    manchester = w.zone_named("zone-manchester").id
    vol = next(v for v in w.volumes.values() if v.name == "ledger-db-data")
    _, snap = await call.job("createSnapshot", volumeid=vol.id, zoneids=manchester)
    snap_id = snap["queryasyncjobresultresponse"]["jobresult"]["snapshot"]["id"]
    template = (
        await call(
            "listTemplates",
            templatefilter="executable",
            zoneid=manchester,
            name="CentOS 5.6 (64-bit) no GUI (Simulator)",
        )
    )["listtemplatesresponse"]["template"][0]
    _, deployed = await call.job(
        "deployVirtualMachine",
        zoneid=manchester,
        serviceofferingid=w.service_offering_id,
        templateid=template["id"],
        name="ledger-dr",
    )
    vm = deployed["queryasyncjobresultresponse"]["jobresult"]["virtualmachine"]
    _, restored = await call.job("createVolume", snapshotid=snap_id, zoneid=manchester)
    new_vol = restored["queryasyncjobresultresponse"]["jobresult"]["volume"]
    _, attached = await call.job("attachVolume", id=new_vol["id"], virtualmachineid=vm["id"])
    body = attached["queryasyncjobresultresponse"]
    assert body["jobstatus"] == 1, body
    assert (body["jobresult"]["volume"]["zonename"], vm["zonename"]) == (
        "zone-manchester",
        "zone-manchester",
    )
    # The original volume is in London: attaching it to the Manchester VM is refused.
    _, wrong = await call.job("attachVolume", id=vol.id, virtualmachineid=vm["id"])
    assert wrong["queryasyncjobresultresponse"]["jobresult"]["errortext"] == (
        "Please specify a VM that is in the same zone as the volume."
    )
