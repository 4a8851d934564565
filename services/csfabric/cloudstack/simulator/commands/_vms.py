"""Virtual machines: list, deploy, stop, destroy (UserVmResponse shapes)."""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json, cs_date
from csfabric.cloudstack.simulator._errors import ApiError, invalid_parameter, not_found
from csfabric.cloudstack.simulator._registry import JobPlan, api, async_api
from csfabric.cloudstack.simulator._state import VirtualMachine, Volume
from csfabric.cloudstack.simulator._world import SERVICE_OFFERING, TEMPLATE

VM_CLASS = "com.cloud.vm.VirtualMachine"


def render_vm(call: Call, vm: VirtualMachine) -> Json:
    w = call.world
    zone = w.zones[vm.zoneid]
    out: Json = {"id": vm.id, "name": vm.name, "displayname": vm.name}
    out |= w.owner_of(vm.account_id)
    out |= {
        "created": cs_date(vm.created),
        "state": vm.state,
        "haenable": False,
        "zoneid": zone.id,
        "zonename": zone.name,
        "templateid": vm.templateid,
        "templatename": TEMPLATE,
        "templatedisplaytext": TEMPLATE,
        "passwordenabled": False,
        "serviceofferingid": vm.serviceofferingid,
        "serviceofferingname": SERVICE_OFFERING,
        "cpunumber": 1,
        "cpuspeed": 500,
        "memory": 512,
        "guestosid": w.template_id,
        "rootdeviceid": 0,
        "rootdevicetype": "ROOT",
        "securitygroup": [],
        "nic": [_nic(call, vm)] if vm.networkid else [],
        "hypervisor": "Simulator",
        "isdynamicallyscalable": False,
        "ostypeid": w.template_id,
        "tags": call.tags(vm.id),
        "affinitygroup": [],
        "deleteprotection": False,  # primitive boolean (4.20+), always written
        "hasannotations": False,
    }
    if call.account.accounttype == 1:  # @Param(authorized = Admin): root admins only
        out["displayvm"] = True
    return out


def _nic(call: Call, vm: VirtualMachine) -> Json:
    net = call.world.networks.get(vm.networkid or "")
    return {
        "id": call.world.stable_id(f"nic/{vm.id}"),
        "networkid": vm.networkid,
        "networkname": net.name if net else "",
        "netmask": "255.255.255.0",
        "gateway": vm.ipaddress.rsplit(".", 1)[0] + ".1",
        "ipaddress": vm.ipaddress,
        "traffictype": "Guest",
        "type": "Isolated",
        "isdefault": True,
        "macaddress": "02:00:" + ":".join(vm.id.replace("-", "")[i : i + 2] for i in (0, 2, 4, 6)),
        "secondaryip": [],
        "extradhcpoption": [],
        "deviceid": "0",
    }


def _vm(call: Call) -> VirtualMachine:
    vm = call.world.vms.get(call.req("id"))
    if vm is None or vm.account_id not in _actable(call):
        raise not_found("virtual machine", call.req("id"))
    return vm


def _actable(call: Call) -> set[str]:
    if call.account.accounttype == 1:
        return set(call.world.accounts)
    return call.visible_owners() | {a.id for a in call.world.accounts.values() if a.project_id}


@api("listVirtualMachines", "user.vm.ListVMsCmd")
async def list_vms(call: Call) -> Json:
    vms = call.owned(call.world.vms.values(), lambda v: v.account_id)
    for field in ("id", "zoneid", "state", "name", "networkid"):
        if (want := call.get(field)) is not None:
            vms = [v for v in vms if str(getattr(v, field)).lower() == want.lower()]
    vms = [v for v in vms if call.match_tags(v.id)]
    return call.list_response("virtualmachine", vms, lambda v: render_vm(call, v))


@async_api(
    "deployVirtualMachine",
    "user.vm.DeployVMCmd",
    required=("zoneid", "serviceofferingid", "templateid"),
)
async def deploy_vm(call: Call) -> JobPlan:
    w = call.world
    zone = w.zones.get(call.req("zoneid"))
    if zone is None:
        raise invalid_parameter(f"Unable to find zone by id={call.req('zoneid')}")
    owner = call.account.id
    if (projectid := call.get("projectid")) is not None:
        owner = call.project(projectid).account_id
    netid = (call.get("networkids") or "").split(",")[0] or None
    if netid is None:
        netid = next((n.id for n in w.networks.values() if n.account_id == owner), None)
    vm = VirtualMachine(
        w.new_id("vm"),
        call.get("name") or "",
        zone.id,
        owner,
        netid,
        call.req("serviceofferingid"),
        call.req("templateid"),
        call.emitter.now(),
        state="Starting",
    )
    vm.name = vm.name or f"VM-{vm.id}"
    vm.ipaddress = f"10.1.1.{10 + len(w.vms) % 240}"
    if sum(1 for v in w.vms.values() if v.account_id == owner) >= w.limits.get((owner, 0), 1 << 30):
        raise ApiError(532, "Maximum number of resources of type 'user_vm' has been exceeded")
    w.vms[vm.id] = vm

    async def run() -> Json:
        root = Volume(
            w.new_id("volume"), f"ROOT-{vm.name}", zone.id, owner, 2 * 1024**3, vm.created
        )
        root.type, root.virtualmachineid, root.deviceid = "ROOT", vm.id, 0
        w.volumes[root.id] = root
        await call.emitter.state(
            "VirtualMachine", vm.id, "StartRequested", "Stopped", "Starting", account_id=owner
        )
        vm.state = "Running"
        await call.emitter.state(
            "VirtualMachine", vm.id, "OperationSucceeded", "Starting", "Running", account_id=owner
        )
        await call.emitter.usage(
            "VM.CREATE",
            zone_id=zone.id,
            resource_class=VM_CLASS,
            resource_uuid=vm.id,
            account_id=owner,
        )
        return {"virtualmachine": render_vm(call, vm)}

    return JobPlan(
        run,
        "VM.CREATE",
        f"starting Vm. Vm Id: {vm.id}",
        owner,
        "VirtualMachine",
        vm.id,
        "VirtualMachine",
        returns_id=True,
    )


@async_api("stopVirtualMachine", "user.vm.StopVMCmd", required=("id",))
async def stop_vm(call: Call) -> JobPlan:
    vm = _vm(call)

    async def run() -> Json:
        old = vm.state
        vm.state = "Stopping"
        await call.emitter.state(
            "VirtualMachine", vm.id, "StopRequested", old, "Stopping", account_id=vm.account_id
        )
        vm.state = "Stopped"
        await call.emitter.state(
            "VirtualMachine",
            vm.id,
            "OperationSucceeded",
            "Stopping",
            "Stopped",
            account_id=vm.account_id,
        )
        return {"virtualmachine": render_vm(call, vm)}

    return JobPlan(
        run,
        "VM.STOP",
        f"stopping Vm. Vm Id: {vm.id}",
        vm.account_id,
        "VirtualMachine",
        vm.id,
        "VirtualMachine",
    )


@async_api("destroyVirtualMachine", "user.vm.DestroyVMCmd", required=("id",))
async def destroy_vm(call: Call) -> JobPlan:
    vm = _vm(call)
    expunge = call.flag("expunge")

    async def run() -> Json:
        old = vm.state
        vm.state = "Destroyed"
        await call.emitter.state(
            "VirtualMachine", vm.id, "DestroyRequested", old, "Destroyed", account_id=vm.account_id
        )
        body = render_vm(call, vm)
        if expunge:
            vm.state = "Expunging"
            body = render_vm(call, vm)
            call.world.vms.pop(vm.id, None)
            for vol in [v for v in call.world.volumes.values() if v.virtualmachineid == vm.id]:
                if vol.type == "ROOT":
                    call.world.volumes.pop(vol.id, None)
                else:
                    vol.virtualmachineid, vol.deviceid = None, None
        await call.emitter.usage(
            "VM.DESTROY",
            zone_id=vm.zoneid,
            resource_class=VM_CLASS,
            resource_uuid=vm.id,
            account_id=vm.account_id,
        )
        return {"virtualmachine": body}

    return JobPlan(
        run,
        "VM.DESTROY",
        f"destroying Vm. Vm Id: {vm.id}",
        vm.account_id,
        "VirtualMachine",
        vm.id,
        "VirtualMachine",
    )
