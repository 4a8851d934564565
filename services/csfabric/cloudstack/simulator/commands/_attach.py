"""Data disks on and off a VM: attachVolume / detachVolume (async, VOLUME.ATTACH/DETACH).

The checks and their wording are VolumeApiServiceImpl's (attachVolumeToVM,
detachVolumeFromVM); CloudStack runs them inside the job, so a refused attach is a failed
job (431 in ``jobresult``), not a refused call.
"""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json
from csfabric.cloudstack.simulator._errors import ApiError, invalid_parameter
from csfabric.cloudstack.simulator._registry import JobPlan, Param, async_api
from csfabric.cloudstack.simulator._state import Volume
from csfabric.cloudstack.simulator.commands._storage import render_volume

_ATTACH_STATES = ("Allocated", "Ready", "Uploaded")
MAX_DATA_DISKS = 6  # the Simulator hypervisor's hypervisor_capabilities row


def _device_id(call: Call, vm_id: str) -> int:
    used = {v.deviceid for v in call.world.volumes.values() if v.virtualmachineid == vm_id}
    if call.get("deviceid") is not None:
        wanted = call.int_param("deviceid", 1)
        if wanted == 0:
            raise invalid_parameter("deviceId can't be 0, which is used by Root device")
        if wanted in used:
            raise invalid_parameter(f"deviceId {wanted} is used by vm {vm_id}")
        return wanted
    # VolumeApiServiceImpl.getDeviceId: the lowest free id from 1, skipping 3 (the CD-ROM).
    return next(d for d in range(1, 64) if d != 3 and d not in used)


@async_api(
    "attachVolume",
    "user.volume.AttachVolumeCmd",
    params=(
        Param("id", "uuid", True, "volume", "the ID of the disk volume"),
        Param("virtualmachineid", "uuid", True, "vm", "the ID of the virtual machine"),
        Param("deviceid", "long", description="the ID of the device to map the volume to"),
    ),
    description="Attaches a disk volume to a virtual machine.",
)
async def attach_volume(call: Call) -> JobPlan:
    w = call.world
    vol = w.volumes[call.req("id")]
    vm = w.vms[call.req("virtualmachineid")]

    async def run() -> Json:
        if vol.type not in ("DATADISK", "ROOT"):
            raise invalid_parameter("Please specify a volume with the valid type: ROOT or DATADISK")
        if vol.virtualmachineid is not None:
            raise invalid_parameter("Please specify a volume that is not attached to any VM.")
        if vol.state not in _ATTACH_STATES:
            raise invalid_parameter("Volume state must be in Allocated, Ready or in Uploaded state")
        if vm.state not in ("Running", "Stopped"):
            raise invalid_parameter("Please specify a VM that is either running or stopped.")
        if vm.zoneid != vol.zoneid:
            raise invalid_parameter("Please specify a VM that is in the same zone as the volume.")
        disks = [
            v for v in w.volumes.values() if v.virtualmachineid == vm.id and v.type == "DATADISK"
        ]
        if len(disks) >= MAX_DATA_DISKS:
            raise invalid_parameter(
                f"The specified VM already has the maximum number of data disks "
                f"({MAX_DATA_DISKS}) attached. Please specify another VM."
            )
        if vol.account_id != vm.account_id:
            raise ApiError(
                531,
                "Virtual machine and volume belong to different accounts, can not attach. "
                "Permission denied.",
                4365,
            )
        vol.deviceid = _device_id(call, vm.id)
        vol.virtualmachineid, vol.attached = vm.id, call.emitter.now()
        if vol.state == "Allocated":
            vol.state = "Ready"  # created on primary storage by the attach
        return {"volume": render_volume(call, vol)}

    desc = f"attaching volume: {vol.id} to vm: {vm.id}"
    return JobPlan(run, "VOLUME.ATTACH", desc, vol.account_id, "Volume", vol.id, "Volume")


@async_api(
    "detachVolume",
    "user.volume.DetachVolumeCmd",
    params=(
        Param("id", "uuid", entity="volume", description="the ID of the disk volume"),
        Param("deviceid", "long", description="the device ID on the virtual machine"),
        Param("virtualmachineid", "uuid", entity="vm", description="the virtual machine's ID"),
    ),
    description="Detaches a disk volume from a virtual machine.",
)
async def detach_volume(call: Call) -> JobPlan:
    w = call.world
    vol = _target(call)
    vm_id = call.get("virtualmachineid") or vol.virtualmachineid

    async def run() -> Json:
        if vm_id is None:
            raise invalid_parameter("The specified volume is not attached to a VM.")
        vm = w.vms[vm_id]
        if vm.state not in ("Running", "Stopped", "Destroyed"):
            raise invalid_parameter("Please specify a VM that is either running or stopped.")
        if vol.type == "ROOT":
            raise invalid_parameter(
                "Root volume detach is not supported for hypervisor type Simulator"
            )
        if vol.virtualmachineid != vm_id:
            raise invalid_parameter("The specified volume is not attached to a VM.")
        vol.virtualmachineid, vol.deviceid, vol.attached = None, None, None
        return {"volume": render_volume(call, vol)}

    desc = f"detaching volume: {vol.id}" + (f" from vm: {vm_id}" if vm_id else "")
    return JobPlan(run, "VOLUME.DETACH", desc, vol.account_id, "Volume", vol.id, "Volume")


def _target(call: Call) -> Volume:
    w = call.world
    if (vid := call.get("id")) is not None:
        if call.get("deviceid") is not None or call.get("virtualmachineid") is not None:
            raise invalid_parameter(
                "Please provide either a volume id, or a tuple(device id, instance id)"
            )
        return w.volumes[vid]
    vm_id, device = call.get("virtualmachineid"), call.get("deviceid")
    if vm_id is None or device is None:
        raise invalid_parameter(
            "Please provide either a volume id, or a tuple(device id, instance id)"
        )
    dev = call.int_param("deviceid", -1)
    found = [v for v in w.volumes.values() if v.virtualmachineid == vm_id and v.deviceid == dev]
    if not found:
        raise invalid_parameter(f"Unable to find volume with device id {dev} on vm {vm_id}")
    return found[0]
