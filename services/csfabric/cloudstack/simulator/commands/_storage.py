"""Volumes: list, create (blank or from a snapshot), delete."""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json, cs_date
from csfabric.cloudstack.simulator._errors import invalid_parameter, not_found
from csfabric.cloudstack.simulator._jobs import event_account
from csfabric.cloudstack.simulator._registry import JobPlan, api, async_api
from csfabric.cloudstack.simulator._state import Volume

VOLUME_CLASS = "com.cloud.storage.Volume"


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
    out["state"] = vol.state
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


def find_volume(call: Call, uuid: str) -> Volume:
    vol = call.world.volumes.get(uuid)
    if vol is None:
        raise not_found("volume", uuid)
    return vol


@api("listVolumes", "user.volume.ListVolumesCmd")
async def list_volumes(call: Call) -> Json:
    vols = call.owned(call.world.volumes.values(), lambda v: v.account_id)
    for field in ("id", "zoneid", "type", "name", "virtualmachineid", "state"):
        if (want := call.get(field)) is not None:
            vols = [v for v in vols if str(getattr(v, field)).lower() == want.lower()]
    vols = [v for v in vols if call.match_tags(v.id)]
    return call.list_response("volume", vols, lambda v: render_volume(call, v))


@async_api("createVolume", "user.volume.CreateVolumeCmd")
async def create_volume(call: Call) -> JobPlan:
    w = call.world
    snapshot = w.snapshots.get(call.get("snapshotid") or "")
    if call.get("snapshotid") and snapshot is None:
        raise invalid_parameter(f"Unable to find snapshot by id {call.get('snapshotid')}")
    if snapshot is None and call.get("diskofferingid") is None:
        raise invalid_parameter(
            "Either disk Offering Id or snapshot Id must be passed whilst creating volume"
        )
    zone_id = call.get("zoneid") or (snapshot.zoneid if snapshot else None)
    if zone_id is None or zone_id not in w.zones:
        raise invalid_parameter(f"Please specify a valid zone: {zone_id}")
    if snapshot is not None:
        store = snapshot.stores.get(zone_id)
        if snapshot.state != "BackedUp" or store is None or store.state != "Ready":
            raise invalid_parameter(f"Snapshot {snapshot.id} is not available in zone {zone_id}")
    owner = call.project(pid).account_id if (pid := call.get("projectid")) else call.account.id
    src = w.volumes.get(snapshot.volumeid) if snapshot else None
    size = src.size if src else call.int_param("size", 1) * 1024**3
    vol = Volume(
        w.new_id("volume"),
        call.get("name") or "",
        zone_id,
        owner,
        size,
        call.emitter.now(),
        state="Allocated",
        snapshotid=snapshot.id if snapshot else None,
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


@api("deleteVolume", "user.volume.DeleteVolumeCmd", required=("id",))
async def delete_volume(call: Call) -> Json:
    vol = find_volume(call, call.req("id"))
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
