"""Snapshots: one copy per zone's image store, CloudStack 4.19+ (policies: _snapshot_policies).

Call-time refusals follow ApiServer's order: parameters (unknown zone uuids, 431), the
entity owner (a project that is not Active, 531), then allocSnapshot (volume not Ready,
431; over the snapshot limit, 535).  What copySnapshot and deleteSnapshot check, they
check inside the job, as SnapshotManagerImpl does.
"""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json
from csfabric.cloudstack.simulator._errors import ApiError, invalid_parameter
from csfabric.cloudstack.simulator._registry import UUID, JobPlan, Param, api, async_api
from csfabric.cloudstack.simulator._state import Snapshot, SnapshotStore, Tag
from csfabric.cloudstack.simulator.commands._snapshot_stores import (
    SNAPSHOT_CLASS,
    check_owner_active,
    check_snapshot_limit,
    copy_to_zones,
    list_rows,
    render_snapshot,
)
from csfabric.cloudstack.simulator.commands._storage import describe_volume

_SNAPSHOT_TYPES = {"MANUAL", "HOURLY", "DAILY", "WEEKLY", "MONTHLY"}
_ID = Param("id", UUID, True, "snapshot", "The ID of the snapshot")
_ZONEIDS = Param("zoneids", "list", entity="zone", description="zones to copy to", since="4.19.0")


def _zone_list(call: Call, name: str) -> list[str]:
    # No zone check here: the registry's (ParamProcessWorker's) left only live zones.
    return [z for z in (call.get(name) or "").split(",") if z]


def _describe(snap: Snapshot) -> str:
    # SnapshotVO.toString (ReflectionToStringBuilderUtils, JSON style); ids are stand-ins.
    return f'Snapshot {{"id":"{snap.id}","name":"{snap.name}","state":"{snap.state}"}}'


@async_api(
    "createSnapshot",
    "user.snapshot.CreateSnapshotCmd",
    params=(
        Param("volumeid", UUID, True, "volume", "The ID of the disk volume"),
        Param("name", description="the name of the snapshot"),
        Param("policyid", UUID, entity="snapshotpolicy", description="policy id of the snapshot"),
        Param("quiescevm", "boolean", description="quiesce vm if true"),
        Param("asyncbackup", "boolean", description="asynchronous backup if true"),
        Param("tags", "map", description="Map of tags (key/value pairs)"),
        _ZONEIDS,
    ),
    description="Creates an instant snapshot of a volume.",
)
async def create_snapshot(call: Call) -> JobPlan:
    w = call.world
    vol = w.volumes[call.req("volumeid")]
    zone_ids = _zone_list(call, "zoneids")
    check_owner_active(call, vol)
    if vol.state != "Ready":
        raise invalid_parameter(
            f"Volume: {describe_volume(vol)} is not in Ready state but {vol.state}. "
            "Cannot take snapshot."
        )
    check_snapshot_limit(call, vol)
    now = call.emitter.now()
    name = call.get("name") or f"{vol.name}_{now.strftime('%Y%m%d%H%M%S')}"
    snap = Snapshot(
        w.new_id("snapshot"), name, vol.id, vol.zoneid, vol.account_id, now, state="Allocated"
    )
    snap.size, snap.volumetype, snap.diskofferingid = vol.size, vol.type, vol.diskofferingid
    snap.stores[vol.zoneid] = SnapshotStore(vol.zoneid)
    # "The snapshot will always be made available in the zone in which the volume is present."
    extra = [z for z in dict.fromkeys(zone_ids) if z != vol.zoneid]
    w.snapshots[snap.id] = snap
    tags = call.tag_filter()

    async def run() -> Json:
        if snap.state == "Destroyed":  # deleted while Allocated: nothing left to take
            raise ApiError(
                530,
                "Failed to create snapshot due to an internal error creating snapshot for "
                f"volume {vol.id}",
                9999,
            )
        snap.state = "BackedUp"
        snap.stores[vol.zoneid].state = "Ready"
        await call.emitter.usage(
            "SNAPSHOT.CREATE",
            zone_id=vol.zoneid,
            resource_class=SNAPSHOT_CLASS,
            resource_uuid=snap.id,
            account_id=snap.account_id,
        )
        if extra:
            await _copy_as_part_of_create(call, snap, extra)
        # VolumeApiServiceImpl.takeSnapshot tags the snapshot once it is taken (copies
        # included), so a snapshot whose job is still running is not found by its tags.
        w.tags.extend(Tag(k, v, "Snapshot", snap.id, snap.account_id) for k, v in tags.items())
        return {"snapshot": render_snapshot(call, snap, vol.zoneid, job=True)}

    return JobPlan(
        run,
        "SNAPSHOT.CREATE",
        f"creating snapshot for volume: {vol.id}",
        vol.account_id,
        "Snapshot",
        snap.id,
        "Snapshot",
        True,
    )


async def _copy_as_part_of_create(call: Call, snap: Snapshot, zone_ids: list[str]) -> None:
    """SnapshotManagerImpl.copyNewSnapshotToZones: its own SNAPSHOT.COPY Started/Completed
    pair, on the calling account (not the project's), never failing the create job."""
    emit = call.emitter
    copying = f"Copying snapshot ID: {snap.id}"
    started = await emit.action(
        "SNAPSHOT.COPY",
        "Started",
        copying,
        user_id=call.user.id,
        account_id=call.account.id,
        entity="Snapshot",
        entity_uuid=snap.id,
    )
    failed = await copy_to_zones(call, snap, zone_ids)
    level, text = "ERROR", f"{copying} failed"
    if len(failed) < len(zone_ids):
        # CloudStack filters failed zones by uuid from a list of names: all zones are named.
        names = ", ".join(call.world.zones[z].name for z in zone_ids)
        level, text = "INFO", f"Completed copying snapshot ID: {snap.id} to zone(s): {names}"
    await emit.action(
        "SNAPSHOT.COPY",
        "Completed",
        text,
        user_id=call.user.id,
        account_id=call.account.id,
        entity="Snapshot",
        entity_uuid=snap.id,
        level=level,
        parent=started.event_id,
    )


@api(
    "listSnapshots",
    "user.snapshot.ListSnapshotsCmd",
    params=(
        Param("id", UUID, entity="snapshot", description="lists snapshot by snapshot ID"),
        Param("volumeid", UUID, entity="volume", description="the ID of the disk volume"),
        Param("zoneid", UUID, entity="zone", description="list snapshots by zone id"),
        Param("name", description="lists snapshot by snapshot name"),
        Param("intervaltype", description="valid values are HOURLY, DAILY, WEEKLY, and MONTHLY."),
        Param("keyword", description="List by keyword"),
        Param("showunique", "boolean", description="one row per snapshot", since="4.19.0"),
        Param("listall", "boolean", description="all resources the caller may see"),
        Param("projectid", UUID, entity="project", description="the project's id"),
    ),
    description="Lists all available snapshots for the account.",
)
async def list_snapshots(call: Call) -> Json:
    snaps = call.owned(call.world.snapshots.values(), lambda s: s.account_id)
    snaps = [s for s in snaps if s.state != "Destroyed"]
    for field in ("id", "volumeid", "name"):
        if (want := call.get(field)) is not None:
            snaps = [s for s in snaps if getattr(s, field) == want]
    if (keyword := call.get("keyword")) is not None:
        snaps = [s for s in snaps if keyword.lower() in s.name.lower()]
    interval = call.get("intervaltype")
    if interval is not None and call.get("volumeid") is not None:  # ignored without it
        if interval.upper() not in _SNAPSHOT_TYPES:
            raise invalid_parameter(f"Unsupported snapshot interval type {interval}")
        snaps = [s for s in snaps if s.intervaltype == interval.upper()]
    snaps.sort(key=lambda s: s.created, reverse=True)  # Filter(created, ascending=false)
    unique = (call.get("showunique") or "true").lower() != "false"
    rows = list_rows(call, snaps, call.get("zoneid"), unique)
    return call.list_response(
        "snapshot", rows, lambda r: render_snapshot(call, r[0], r[1], unique=unique, tags=r[2])
    )


@async_api(
    "deleteSnapshot",
    "user.snapshot.DeleteSnapshotCmd",
    params=(
        _ID,
        Param("zoneid", UUID, entity="zone", description="the zone of the copy", since="4.19.0"),
    ),
    description="Deletes a snapshot of a disk volume.",
)
async def delete_snapshot(call: Call) -> JobPlan:
    snap = call.world.snapshots[call.req("id")]
    zone = call.get("zoneid")

    async def run() -> Json:
        # SnapshotManagerImpl.deleteSnapshot + DefaultSnapshotStrategy.deleteSnapshot.
        if snap.state == "Destroyed":
            raise invalid_parameter(f"Snapshot [{_describe(snap)}] is already destroyed")
        if zone is not None and snap.state in ("Allocated", "CreatedOnPrimary"):
            raise invalid_parameter(f"Snapshot in {snap.state} can not be deleted for a zone")
        if snap.state not in ("Allocated", "BackedUp"):
            raise invalid_parameter(
                f"Can't delete snapshot {_describe(snap)} due to it is in {snap.state} Status"
            )
        # A copy still downloading is deleted like any other: the strategy looks at the
        # snapshot's state only, never at the store row's.
        doomed = [z for z in snap.stores if zone is None or z == zone]
        if snap.state == "BackedUp" and not doomed:
            raise ApiError(530, "Failed to delete snapshot", 9999)
        was_backed_up = snap.state == "BackedUp"
        for zone_id in doomed:
            del snap.stores[zone_id]
            if was_backed_up:
                await call.emitter.usage(
                    "SNAPSHOT.DELETE",
                    zone_id=zone_id,
                    resource_class=SNAPSHOT_CLASS,
                    resource_uuid=snap.id,
                    account_id=snap.account_id,
                )
        if not snap.stores:
            snap.state = "Destroyed"
        return {"success": True}

    return JobPlan(
        run,
        "SNAPSHOT.DELETE",
        f"deleting snapshot: {snap.id}",
        snap.account_id,
        "Snapshot",
        snap.id,
        "Snapshot",
    )


@async_api(
    "copySnapshot",
    "user.snapshot.CopySnapshotCmd",
    params=(
        _ID,
        Param("destzoneid", UUID, entity="zone", description="the ID of the destination zone"),
        Param("destzoneids", "list", entity="zone", description="destination zones"),
        Param("sourcezoneid", UUID, entity="zone", description="the ID of the source zone"),
    ),
    description="Copies a snapshot from one zone to another.",
)
async def copy_snapshot(call: Call) -> JobPlan:
    snap = call.world.snapshots[call.req("id")]
    one, many = _zone_list(call, "destzoneid"), _zone_list(call, "destzoneids")
    source = next(iter(_zone_list(call, "sourcezoneid")), None)
    dests = list(dict.fromkeys(one + many))
    # CopySnapshotCmd.getEventDescription (its ", " join leaves two spaces after "zones:").
    desc = f"copying snapshot: {snap.id}" + (f" to zones:  {', '.join(dests)}" if dests else "")

    async def run() -> Json:
        if one and many:
            raise invalid_parameter(
                "Both destzoneid and destzoneids cannot be specified at the same time."
            )
        if snap.state != "BackedUp":
            raise invalid_parameter("Snapshot is not backed up")
        src = source or snap.zoneid
        if not dests:
            raise invalid_parameter("Please specify valid destination zone(s).")
        if src in dests:
            raise invalid_parameter("Please specify different source and destination zones.")
        store = snap.stores.get(src)
        if store is None or store.state != "Ready":
            raise invalid_parameter(f"There is no snapshot ID: {snap.id} ready on image store")
        failed = await copy_to_zones(call, snap, dests)
        if len(failed) == len(dests):
            raise ApiError(530, "Failed to copy snapshot", 4250)
        # QueryManagerImpl.listSnapshot(CopySnapshotCmd): a destination's store row.
        shown = next(z for z in dests if z not in failed)
        return {"snapshot": render_snapshot(call, snap, shown, unique=False)}

    return JobPlan(run, "SNAPSHOT.COPY", desc, snap.account_id, "Snapshot", snap.id, "Snapshot")
