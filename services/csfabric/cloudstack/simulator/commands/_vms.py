"""Virtual machines: list, deploy, destroy (UserVmResponse shapes); start/stop in _power."""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json, cs_date
from csfabric.cloudstack.simulator._errors import invalid_parameter, not_found
from csfabric.cloudstack.simulator._limits import check_limit, vm_count
from csfabric.cloudstack.simulator._registry import JobPlan, Param, api, async_api
from csfabric.cloudstack.simulator._state import Network, VirtualMachine, Volume
from csfabric.cloudstack.simulator._world import SERVICE_OFFERING, TEMPLATE, World

VM_CLASS = "com.cloud.vm.VirtualMachine"


VM_ID = Param("id", "uuid", True, "vm", "The ID of the virtual machine")
_PROJECT = Param("projectid", "uuid", entity="project", description="the project's id")


def render_vm(call: Call, vm: VirtualMachine) -> Json:
    w = call.world
    zone = w.zones[vm.zoneid]
    offering = w.service_offerings.get(vm.serviceofferingid)
    template = w.templates.get(vm.templateid)
    out: Json = {"id": vm.id, "name": vm.name, "displayname": vm.name}
    out |= w.owner_of(vm.account_id)
    out |= {
        "created": cs_date(vm.created),
        "state": vm.state,
        "haenable": False,
        "zoneid": zone.id,
        "zonename": zone.name,
        "templateid": vm.templateid,
        "templatename": template.name if template else TEMPLATE,
        "templatedisplaytext": template.displaytext if template else TEMPLATE,
        "passwordenabled": False,
        "serviceofferingid": vm.serviceofferingid,
        "serviceofferingname": offering.name if offering else SERVICE_OFFERING,
        "cpunumber": offering.cpunumber if offering else 1,
        "cpuspeed": offering.cpuspeed if offering else 500,
        "memory": offering.memory if offering else 512,
        "guestosid": template.ostypeid if template else w.template_id,
        "rootdeviceid": 0,
        "rootdevicetype": "ROOT",
        "securitygroup": [],
        "nic": [_nic(call, vm)] if vm.networkid else [],
        "hypervisor": "Simulator",
        "isdynamicallyscalable": False,
        "ostypeid": template.ostypeid if template else w.template_id,
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
        "type": net.type if net else "Isolated",
        "isdefault": True,
        "macaddress": "02:00:" + ":".join(vm.id.replace("-", "")[i : i + 2] for i in (0, 2, 4, 6)),
        "secondaryip": [],
        "extradhcpoption": [],
        "deviceid": "0",
    }


def find_vm(call: Call) -> VirtualMachine:
    vm = call.world.vms.get(call.req("id"))
    if vm is None or vm.account_id not in _actable(call):
        raise not_found("virtual machine", call.req("id"))
    return vm


def _actable(call: Call) -> set[str]:
    if call.account.accounttype == 1:
        return set(call.world.accounts)
    return call.visible_owners() | {a.id for a in call.world.accounts.values() if a.project_id}


@api(
    "listVirtualMachines",
    "user.vm.ListVMsCmd",
    params=(
        Param("id", "uuid", entity="vm", description="the ID of the virtual machine"),
        Param("zoneid", "uuid", entity="zone", description="the availability zone ID"),
        Param("networkid", "uuid", entity="network", description="list by network id"),
        Param("name", description="name of the virtual machine"),
        Param("state", description="state of the virtual machine"),
        Param("listall", "boolean", description="all resources the caller may see"),
        _PROJECT,
    ),
    description="List the virtual machines owned by the account.",
)
async def list_vms(call: Call) -> Json:
    vms = call.owned(call.world.vms.values(), lambda v: v.account_id)
    for field in ("id", "zoneid", "state", "name", "networkid"):
        if (want := call.get(field)) is not None:
            vms = [v for v in vms if str(getattr(v, field)).lower() == want.lower()]
    vms = [v for v in vms if call.match_tags(v.id)]
    return call.list_response("virtualmachine", vms, lambda v: render_vm(call, v))


def default_network(w: World, owner: str, zone_id: str) -> Network | None:
    """The owner's own network in the zone, else the zone's shared guest network."""
    nets = [n for n in w.networks.values() if n.zoneid == zone_id]
    own = [n for n in nets if n.account_id == owner and n.type == "Isolated"]
    shared = [n for n in nets if n.type == "Shared"]
    return (own or shared)[0] if own or shared else None


@async_api(
    "deployVirtualMachine",
    "user.vm.DeployVMCmd",
    params=(
        Param("zoneid", "uuid", True, "zone", "availability zone for the virtual machine"),
        Param("serviceofferingid", "uuid", True, "serviceoffering", "the service offering"),
        Param("templateid", "uuid", True, "template", "the template for the virtual machine"),
        Param("name", description="host name for the virtual machine"),
        Param("displayname", description="an optional user generated name"),
        Param("networkids", "list", entity="network", description="list of network ids"),
        Param("diskofferingid", "uuid", entity="diskoffering", description="data disk offering"),
        Param("startvm", "boolean", description="true by default: start the VM once deployed"),
        _PROJECT,
    ),
    description="Creates and automatically starts a virtual machine based on a service "
    "offering, disk offering, and template.",
)
async def deploy_vm(call: Call) -> JobPlan:
    w = call.world
    zone = w.zones[call.req("zoneid")]
    template = w.templates[call.req("templateid")]
    if zone.id not in template.zone_ids:
        raise invalid_parameter(
            f"Template {template.id} has not been completely downloaded to zone {zone.id}"
        )
    owner = call.account.id
    if (projectid := call.get("projectid")) is not None:
        owner = call.project(projectid).account_id
    netid = (call.get("networkids") or "").split(",")[0] or None
    if netid is not None and w.networks[netid].zoneid != zone.id:
        raise invalid_parameter(f"Network id={netid} doesn't belong to zone {zone.id}")
    if netid is None:
        net = default_network(w, owner, zone.id)
        netid = net.id if net else None
    start = (call.get("startvm") or "true").lower() != "false"
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
    # DeployVMCmd.create: ResourceAllocationException → 535; a project's VMs count against
    # the project's limit (check_limit resolves the project from its account).
    check_limit(w, owner, 0, vm_count(w, owner))
    w.vms[vm.id] = vm

    async def run() -> Json:
        root = Volume(
            w.new_id("volume"), f"ROOT-{vm.name}", zone.id, owner, 2 * 1024**3, vm.created
        )
        root.type, root.virtualmachineid, root.deviceid = "ROOT", vm.id, 0
        w.volumes[root.id] = root
        if start:
            await power_on(call, vm)
        else:
            vm.state = "Stopped"
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


async def power_on(call: Call, vm: VirtualMachine) -> None:
    owner = vm.account_id
    vm.state = "Starting"
    await call.emitter.state(
        "VirtualMachine", vm.id, "StartRequested", "Stopped", "Starting", account_id=owner
    )
    vm.state = "Running"
    await call.emitter.state(
        "VirtualMachine", vm.id, "OperationSucceeded", "Starting", "Running", account_id=owner
    )


@async_api(
    "destroyVirtualMachine",
    "user.vm.DestroyVMCmd",
    params=(
        VM_ID,
        Param("expunge", "boolean", description="expunge the VM at once (root admins)"),
        Param("volumeids", "list", entity="volume", description="data volumes to destroy"),
    ),
    description="Destroys a virtual machine.",
)
async def destroy_vm(call: Call) -> JobPlan:
    vm = find_vm(call)
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
                if vol.type == "ROOT":  # expunged with its snapshot policies
                    call.world.volumes.pop(vol.id, None)
                    for pid in [
                        p.id for p in call.world.snapshot_policies.values() if p.volumeid == vol.id
                    ]:
                        call.world.snapshot_policies.pop(pid)
                else:
                    vol.virtualmachineid, vol.deviceid, vol.attached = None, None, None
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
