"""Snapshots (one copy per zone, CloudStack 4.19+) and snapshot policies."""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json, cs_date
from csfabric.cloudstack.simulator._errors import invalid_parameter
from csfabric.cloudstack.simulator._registry import JobPlan, api, async_api
from csfabric.cloudstack.simulator._state import Snapshot, SnapshotPolicy, Tag
from csfabric.cloudstack.simulator.commands._storage import find_volume

SNAPSHOT_CLASS = "com.cloud.storage.Snapshot"
_INTERVALS = {"HOURLY": 0, "DAILY": 1, "WEEKLY": 2, "MONTHLY": 3}


def render_snapshot(call: Call, snap: Snapshot, zone_id: str | None = None) -> Json:
    w = call.world
    vol = w.volumes.get(snap.volumeid)
    zone = w.zones[zone_id or snap.zoneid]
    out: Json = {"id": snap.id}
    out |= w.owner_of(snap.account_id)
    out |= {
        "snapshottype": "MANUAL",
        "volumeid": snap.volumeid,
        "volumename": vol.name if vol else "",
        "volumetype": vol.type if vol else "DATADISK",
        "created": cs_date(snap.created),
        "name": snap.name,
        "intervaltype": snap.intervaltype,
        "state": snap.state,
        "physicalsize": vol.size if vol else 0,
        "virtualsize": vol.size if vol else 0,
        "zoneid": zone.id,
        "zonename": zone.name,
        "tags": call.tags(snap.id),
        "revertable": False,
        "hasannotations": False,
    }
    return out


def _find_snapshot(call: Call) -> Snapshot:
    snap = call.world.snapshots.get(call.req("id"))
    if snap is None:
        raise invalid_parameter(f"Unable to find snapshot with id {call.req('id')}")
    return snap


@async_api("createSnapshot", "user.snapshot.CreateSnapshotCmd", required=("volumeid",))
async def create_snapshot(call: Call) -> JobPlan:
    w = call.world
    vol = find_volume(call, call.req("volumeid"))
    now = call.emitter.now()
    name = call.get("name") or f"{vol.name}_{now.strftime('%Y%m%d%H%M%S')}"
    snap = Snapshot(
        w.new_id("snapshot"),
        name,
        vol.id,
        vol.zoneid,
        vol.account_id,
        now,
        state="Allocated",
        zone_ids=[vol.zoneid],
    )
    extra = [z for z in (call.get("zoneids") or "").split(",") if z and z != vol.zoneid]
    w.snapshots[snap.id] = snap
    # createSnapshot's ``tags`` map: the snapshot is tagged as it is allocated, so a caller
    # that lost the answer finds it by tag (the fabric's csfabric:key).
    w.tags.extend(
        Tag(k, v, "Snapshot", snap.id, vol.account_id) for k, v in call.tag_filter().items()
    )

    async def run() -> Json:
        snap.state = "BackedUp"
        snap.zone_ids.extend(z for z in extra if z in w.zones)
        for zone_id in snap.zone_ids:
            await call.emitter.usage(
                "SNAPSHOT.CREATE",
                zone_id=zone_id,
                resource_class=SNAPSHOT_CLASS,
                resource_uuid=snap.id,
                account_id=snap.account_id,
            )
        return {"snapshot": render_snapshot(call, snap)}

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


@api("listSnapshots", "user.snapshot.ListSnapshotsCmd")
async def list_snapshots(call: Call) -> Json:
    snaps = call.owned(call.world.snapshots.values(), lambda s: s.account_id)
    for field in ("id", "volumeid", "name"):
        if (want := call.get(field)) is not None:
            snaps = [s for s in snaps if getattr(s, field) == want]
    snaps = [s for s in snaps if call.match_tags(s.id)]
    zone = call.get("zoneid")
    rows = [(s, z) for s in snaps for z in s.zone_ids if zone is None or z == zone]
    return call.list_response("snapshot", rows, lambda r: render_snapshot(call, r[0], r[1]))


@async_api("deleteSnapshot", "user.snapshot.DeleteSnapshotCmd", required=("id",))
async def delete_snapshot(call: Call) -> JobPlan:
    snap = _find_snapshot(call)
    zone = call.get("zoneid")

    async def run() -> Json:
        if zone is not None and zone in snap.zone_ids and len(snap.zone_ids) > 1:
            snap.zone_ids.remove(zone)
        else:
            call.world.snapshots.pop(snap.id, None)
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


@async_api("copySnapshot", "user.snapshot.CopySnapshotCmd", required=("id",))
async def copy_snapshot(call: Call) -> JobPlan:
    snap = _find_snapshot(call)
    dests = [z for z in (call.get("destzoneids") or call.get("destzoneid") or "").split(",") if z]
    if not dests:
        raise invalid_parameter("Please specify valid destination zone(s).")
    for zone_id in dests:
        if zone_id not in call.world.zones:
            raise invalid_parameter(f"Please specify a valid destination zone: {zone_id}")

    async def run() -> Json:
        for zone_id in dests:
            if zone_id not in snap.zone_ids:
                snap.zone_ids.append(zone_id)
        return {"snapshot": render_snapshot(call, snap, dests[0])}

    return JobPlan(
        run,
        "SNAPSHOT.COPY",
        f"copying snapshot ID: {snap.id}",
        snap.account_id,
        "Snapshot",
        snap.id,
        "Snapshot",
    )


@api(
    "createSnapshotPolicy",
    "user.snapshot.CreateSnapshotPolicyCmd",
    required=("intervaltype", "maxsnaps", "schedule", "timezone", "volumeid"),
)
async def create_snapshot_policy(call: Call) -> Json:
    vol = find_volume(call, call.req("volumeid"))
    interval = _INTERVALS.get(call.req("intervaltype").upper())
    if interval is None:
        raise invalid_parameter(f"Unsupported interval type {call.req('intervaltype')}")
    zone_ids = [z for z in (call.get("zoneids") or "").split(",") if z]
    policy = SnapshotPolicy(
        call.world.new_id("snapshotpolicy"),
        vol.id,
        call.req("schedule"),
        interval,
        call.int_param("maxsnaps", 1),
        call.req("timezone"),
        zone_ids,
    )
    call.world.snapshot_policies[policy.id] = policy
    await call.emitter.action(
        "SNAPSHOTPOLICY.CREATE",
        "Completed",
        f"Successfully created snapshot policy for volume: {vol.id}",
        user_id=call.user.id,
        account_id=vol.account_id,
        entity="SnapshotPolicy",
        entity_uuid=policy.id,
    )
    # ApiResponseHelper.createSnapshotPolicyResponse: bare ZoneResponses (id, name, tags
    # nulled) — plus ZoneResponse's primitive booleans, which Gson always writes.
    bare = {"nsxenabled": False, "multiarch": False, "routedmodeenabled": False}
    zones = [
        {"id": z, "name": call.world.zones[z].name} | bare
        for z in zone_ids
        if z in call.world.zones
    ]
    body: Json = {
        "id": policy.id,
        "volumeid": vol.id,
        "schedule": policy.schedule,
        "intervaltype": policy.intervaltype,  # Java short → JSON number
        "maxsnaps": policy.maxsnaps,
        "timezone": policy.timezone,
    }
    if call.account.accounttype == 1:  # fordisplay is @Param(authorized = Admin)
        body["fordisplay"] = True
    body |= {"tags": [], "zone": zones, "storage": []}
    return {"snapshotpolicy": body}
