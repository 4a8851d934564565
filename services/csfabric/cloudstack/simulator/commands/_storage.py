"""Volumes: list, create (blank or from a snapshot), delete."""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json, cs_date
from csfabric.cloudstack.simulator._errors import invalid_parameter, not_found
from csfabric.cloudstack.simulator._jobs import event_account
from csfabric.cloudstack.simulator._limits import check_limit
from csfabric.cloudstack.simulator._registry import UUID, JobPlan, Param, api, async_api
from csfabric.cloudstack.simulator._state import DiskOffering, Volume

VOLUME_CLASS = "com.cloud.storage.Volume"
# custom.diskoffering.size.min / .max (VolumeOrchestrationService), in GiB.
CUSTOM_MIN_GIB, CUSTOM_MAX_GIB = 1, 1024
_PROJECT = Param("projectid", UUID, entity="project", description="the project's id")


def render_volume(call: Call, vol: Volume) -> Json:
    w = call.world
    zone = w.zones[vol.zoneid]
    out: Json = {"id": vol.id, "name": vol.name, "zoneid": zone.id, "zonename": zone.name}
    out["type"] = vol.type
    vm = w.vms.get(vol.virtualmachineid or "")
    if vm is not None:
        out |= {
            "deviceid": vol.deviceid if vol.deviceid is not None else 1,
            "virtualmachineid": vm.id,
            "vmname": vm.name,
            "vmdisplayname": vm.name,
            "vmstate": vm.state,
        }
    out |= {"provisioningtype": "thin", "size": vol.size, "created": cs_date(vol.created)}
    if vol.attached is not None:  # Ansible's cs_volume tells an attached volume by it
        out["attached"] = cs_date(vol.attached)
    out["state"] = vol.state
    offering = w.disk_offerings.get(vol.diskofferingid or "")
    if offering is not None:  # VolumeJoinDaoImpl: a data disk's own (not compute) offering
        out |= {
            "diskofferingid": offering.id,
            "diskofferingname": offering.name,
            "diskofferingdisplaytext": offering.displaytext,
        }
    out |= w.owner_of(vol.account_id)
    out |= {
        "storagetype": "shared",
        "hypervisor": "Simulator",
        "destroyed": False,
        "isextractable": vol.type != "ROOT",
        "tags": call.tags(vol.id),
        # Primitive booleans of VolumeResponse: Gson always writes them.
        "quiescevm": False,
        "supportsstoragesnapshot": False,
        "deleteprotection": False,
        "hasannotations": False,
    }
    if call.account.accounttype == 1:  # @Param(authorized = Admin): root admins only
        out["displayvolume"] = True
    if vol.snapshotid:
        out["snapshotid"] = vol.snapshotid
    return out


def describe_volume(vol: Volume) -> str:
    # VolumeVO.toString (ReflectionToStringBuilderUtils, JSON style); ids are stand-ins.
    return f'Volume {{"id":"{vol.id}","name":"{vol.name}","volumeType":"{vol.type}"}}'


@api(
    "listVolumes",
    "user.volume.ListVolumesCmd",
    params=(
        Param("id", UUID, entity="volume", description="the ID of the disk volume"),
        Param("zoneid", UUID, entity="zone", description="the ID of the availability zone"),
        Param("virtualmachineid", UUID, entity="vm", description="the ID of the virtual machine"),
        Param("name", description="the name of the disk volume"),
        Param("type", description="the type of disk volume"),
        Param("state", description="state of the volume"),
        Param("listall", "boolean", description="all resources the caller may see"),
        _PROJECT,
    ),
    description="Lists all volumes.",
)
async def list_volumes(call: Call) -> Json:
    vols = call.owned(call.world.volumes.values(), lambda v: v.account_id)
    for field in ("id", "zoneid", "type", "name", "virtualmachineid", "state"):
        if (want := call.get(field)) is not None:
            vols = [v for v in vols if str(getattr(v, field)).lower() == want.lower()]
    vols = [v for v in vols if call.match_tags(v.id)]
    return call.list_response("volume", vols, lambda v: render_volume(call, v))


@async_api(
    "createVolume",
    "user.volume.CreateVolumeCmd",
    params=(
        Param("name", description="the name of the disk volume"),
        Param("zoneid", UUID, entity="zone", description="the ID of the availability zone"),
        Param("diskofferingid", UUID, entity="diskoffering", description="the disk offering"),
        Param("snapshotid", UUID, entity="snapshot", description="the snapshot to create from"),
        Param("size", "long", description="size in GiB for a custom disk offering"),
        _PROJECT,
    ),
    description="Creates a disk volume from a disk offering. This disk volume must still "
    "be attached to a virtual machine to make use of it.",
)
async def create_volume(call: Call) -> JobPlan:
    w = call.world
    snapshot = w.snapshots.get(call.get("snapshotid") or "")
    offering = w.disk_offerings.get(call.get("diskofferingid") or "")
    if snapshot is None and offering is None:
        raise invalid_parameter(
            "At least one of disk Offering ID or snapshot ID must be passed whilst creating volume"
        )
    if snapshot is not None and offering is not None and snapshot.volumetype != "ROOT":
        raise invalid_parameter(
            "Disk Offering ID cannot be passed whilst creating volume from snapshot other "
            "than ROOT disk snapshots"
        )
    size = _offered_size(call, offering) if offering is not None else None
    zone_id = call.get("zoneid") or (snapshot.zoneid if snapshot else None)
    if zone_id is None:  # allocVolume looks the zone up by a null id
        raise not_found("zone", "null")
    if snapshot is not None:
        store = snapshot.stores.get(zone_id)
        if snapshot.state != "BackedUp" or store is None or store.state != "Ready":
            raise invalid_parameter(f"Snapshot {snapshot.id} is not available in zone {zone_id}")
        if size is None:  # a pure snapshot volume: the snapshot's size and offering
            size, offering = snapshot.size, w.disk_offerings.get(snapshot.diskofferingid or "")
        elif size < snapshot.size:
            raise invalid_parameter(
                f"Invalid size for volume creation: {size // 1024**3}GB, snapshot size is: "
                f"{snapshot.size // 1024**3}GB"
            )
    owner = call.project(pid).account_id if (pid := call.get("projectid")) else call.account.id
    # checkVolumeResourceLimit: one more volume of the owner (a project: the project's limit).
    check_limit(w, owner, 2, sum(1 for v in w.volumes.values() if v.account_id == owner))
    vol = Volume(
        w.new_id("volume"),
        call.get("name") or "",
        zone_id,
        owner,
        size or 0,
        call.emitter.now(),
        state="Allocated",
        snapshotid=snapshot.id if snapshot else None,
        diskofferingid=offering.id if offering else None,
    )
    vol.name = vol.name or f"vol-{vol.id[:8]}"
    w.volumes[vol.id] = vol

    async def run() -> Json:
        vol.state = "Ready"
        await call.emitter.usage(
            "VOLUME.CREATE",
            zone_id=zone_id,
            resource_class=VOLUME_CLASS,
            resource_uuid=vol.id,
            account_id=owner,
        )
        return {"volume": render_volume(call, vol)}

    desc = f"creating volume: {vol.name}" + (f" from snapshot: {snapshot.id}" if snapshot else "")
    return JobPlan(run, "VOLUME.CREATE", desc, owner, "Volume", vol.id, "Volume", True)


def _offered_size(call: Call, offering: DiskOffering) -> int:
    """Bytes, as allocVolume sizes a new volume: ``size`` (GiB) only for a Custom offering."""
    gib = call.int_param("size", 0) if call.get("size") is not None else None
    if gib is not None and gib <= 0:
        raise invalid_parameter("Disk size must be larger than 0")
    if offering.iscustomized:
        if gib is None:
            raise invalid_parameter("This disk offering requires a custom size specified")
        if not CUSTOM_MIN_GIB <= gib <= CUSTOM_MAX_GIB:
            raise invalid_parameter(
                f"Volume size: {gib} GB is out of allowed range. Min: {CUSTOM_MIN_GIB}. "
                f"Max: {CUSTOM_MAX_GIB}"
            )
        return gib * 1024**3
    if gib is not None:
        raise invalid_parameter("This disk offering does not allow custom size")
    return offering.disksize * 1024**3


@api(
    "deleteVolume",
    "user.volume.DeleteVolumeCmd",
    params=(Param("id", UUID, True, "volume", "The ID of the disk volume"),),
    description="Deletes a detached disk volume.",
)
async def delete_volume(call: Call) -> Json:
    vol = call.world.volumes[call.req("id")]
    if vol.virtualmachineid:
        raise invalid_parameter("Please specify a volume that is not attached to any VM.")
    call.world.volumes.pop(vol.id, None)
    # DeleteVolumeCmd calls destroyVolume, @ActionEvent(VOLUME.DESTROY, "destroying a
    # volume"), synchronous: one Completed event, with the details the command set.
    await call.emitter.action(
        "VOLUME.DESTROY",
        "Completed",
        f"Successfully completed destroying a volume. Volume Id: {vol.id}",
        user_id=call.user.id,
        account_id=event_account(call, "VOLUME.DESTROY", call.account.id, job_thread=True),
        entity="Volume",
        entity_uuid=vol.id,
    )
    await call.emitter.usage(
        "VOLUME.DELETE",
        zone_id=vol.zoneid,
        resource_class=VOLUME_CLASS,
        resource_uuid=vol.id,
        account_id=vol.account_id,
    )
    return {"success": True}
