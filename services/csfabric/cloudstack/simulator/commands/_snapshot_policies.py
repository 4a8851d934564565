"""Snapshot policies: create, list, update (``fordisplay``/``customid`` only, as
UpdateSnapshotPolicyCmd), delete.

A schedule change is a second createSnapshotPolicy for the same (volume, intervaltype):
CloudStack updates the existing policy then (persistSnapshotPolicy), it has no other way to.
"""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json
from csfabric.cloudstack.simulator._errors import invalid_parameter
from csfabric.cloudstack.simulator._jobs import event_account
from csfabric.cloudstack.simulator._registry import JobPlan, Param, api, async_api
from csfabric.cloudstack.simulator._state import SnapshotPolicy, Volume
from csfabric.cloudstack.simulator.commands._core import persist_tags
from csfabric.cloudstack.simulator.commands._storage import describe_volume

_ID = Param("id", "uuid", entity="snapshotpolicy", description="the ID of the snapshot policy")
# ZoneResponse's primitive booleans, written even in the bare zone items of a policy.
_BARE_ZONE = {"nsxenabled": False, "multiarch": False, "routedmodeenabled": False}
# DateUtil.IntervalType ordinals (the policy's ``intervaltype``, a Java short).
_INTERVALS = {"HOURLY": 0, "DAILY": 1, "WEEKLY": 2, "MONTHLY": 3}
# snapshot.max.hourly/daily/weekly/monthly defaults (Snapshot.Type.getMax).
MAX_SNAPS = 8
# Fields of the schedule DateUtil.getNextRunTime reads (MM, MM:HH, MM:HH:DD).
_SCHEDULE_PARTS = {0: 1, 1: 2, 2: 3, 3: 3}


def render_policy(call: Call, policy: SnapshotPolicy) -> Json:
    """SnapshotPolicyResponse, as ApiResponseHelper.createSnapshotPolicyResponse fills it."""
    w = call.world
    zones = [{"id": z, "name": w.zones[z].name} | _BARE_ZONE for z in policy.zone_ids]
    body: Json = {
        "id": policy.id,
        "volumeid": policy.volumeid,
        "schedule": policy.schedule,
        "intervaltype": policy.intervaltype,
        "maxsnaps": policy.maxsnaps,
        "timezone": policy.timezone,
    }
    if call.account.accounttype == 1:  # fordisplay is @Param(authorized = Admin)
        body["fordisplay"] = True
    return body | {"tags": call.tags(policy.id), "zone": zones, "storage": []}


def _visible(call: Call) -> list[SnapshotPolicy]:
    owners = call.visible_owners()
    if call.account.accounttype == 1:
        owners |= {a.id for a in call.world.accounts.values()}
    vols = call.world.volumes
    return [
        p
        for p in call.world.snapshot_policies.values()
        if p.volumeid in vols and vols[p.volumeid].account_id in owners
    ]


@api(
    "createSnapshotPolicy",
    "user.snapshot.CreateSnapshotPolicyCmd",
    params=(
        Param("volumeid", "uuid", True, "volume", "the ID of the disk volume"),
        Param("intervaltype", required=True, description="HOURLY, DAILY, WEEKLY or MONTHLY"),
        Param("maxsnaps", "integer", True, description="maximum number of snapshots to retain"),
        Param("schedule", required=True, description="time the snapshot is scheduled"),
        Param("timezone", required=True, description="the time zone of the schedule"),
        Param("tags", "map", description="Map of tags (key/value pairs)"),
        Param("zoneids", "list", entity="zone", description="zones to copy to", since="4.19.0"),
    ),
    description="Creates a snapshot policy for the account.",
)
async def create_snapshot_policy(call: Call) -> Json:
    w = call.world
    vol = w.volumes[call.req("volumeid")]
    interval, maxsnaps = _validated(call, vol)
    zone_ids = [z for z in (call.get("zoneids") or "").split(",") if z]
    policy = next(
        (
            p
            for p in w.snapshot_policies.values()
            if p.volumeid == vol.id and p.intervaltype == interval
        ),
        None,
    )
    if policy is None:
        policy = SnapshotPolicy(
            w.new_id("snapshotpolicy"),
            vol.id,
            call.req("schedule"),
            interval,
            maxsnaps,
            call.req("timezone"),
            zone_ids,
        )
        w.snapshot_policies[policy.id] = policy
    else:  # updateSnapshotPolicy: the zones are replaced only when some are given
        policy.schedule, policy.timezone = call.req("schedule"), call.req("timezone")
        policy.maxsnaps = maxsnaps
        policy.zone_ids = zone_ids or policy.zone_ids
    persist_tags(w, [policy.id], "SnapshotPolicy", call.tag_filter(), vol.account_id)
    await call.emitter.action(
        "SNAPSHOTPOLICY.CREATE",
        "Completed",
        f"Successfully created snapshot policy for volume: {vol.id}",
        user_id=call.user.id,
        account_id=event_account(call, "SNAPSHOTPOLICY.CREATE", call.account.id, job_thread=True),
        entity="SnapshotPolicy",
        entity_uuid=policy.id,
    )
    return {"snapshotpolicy": render_policy(call, policy)}


def _validated(call: Call, vol: Volume) -> tuple[int, int]:
    """(interval ordinal, maxsnaps), refused with SnapshotManagerImpl.createPolicy's texts."""
    if vol.state != "Ready":
        raise invalid_parameter(
            f"Volume: {describe_volume(vol)} is not in Ready state but {vol.state}. "
            "Cannot take snapshot."
        )
    given = call.req("intervaltype")
    interval = _INTERVALS.get(given.upper())
    if interval is None:
        raise invalid_parameter(f"Unsupported interval type {given}")
    schedule = call.req("schedule")
    parts = schedule.split(":")
    try:
        fields = [int(p) for p in parts[: _SCHEDULE_PARTS[interval]]]
        valid = len(fields) == _SCHEDULE_PARTS[interval] and (interval != 3 or fields[2] <= 28)
    except ValueError:
        valid = False
    if not valid:
        raise invalid_parameter(
            f"{describe_volume(vol)} has an invalid schedule [{schedule}] for interval type "
            f"[{given}]."
        )
    maxsnaps = call.int_param("maxsnaps", 0)
    if maxsnaps <= 0:
        raise invalid_parameter(
            f"maxSnaps [{maxsnaps}] for volume {describe_volume(vol)} should be greater than 0."
        )
    if maxsnaps > MAX_SNAPS:
        raise invalid_parameter(
            f"maxSnaps [{maxsnaps}] for volume {describe_volume(vol)} exceeds limit "
            f"[{MAX_SNAPS}] for interval type [{given}]."
        )
    return interval, maxsnaps


@api(
    "listSnapshotPolicies",
    "user.snapshot.ListSnapshotPoliciesCmd",
    params=(
        _ID,
        Param("volumeid", "uuid", entity="volume", description="the ID of the disk volume"),
        Param("fordisplay", "boolean", description="list resources by display flag"),
        Param("keyword", description="List by keyword"),
        Param("listall", "boolean", description="all policies the caller may see (4.22)"),
    ),
    description="Lists snapshot policies.",
)
async def list_snapshot_policies(call: Call) -> Json:
    policies = _visible(call)
    if (pid := call.get("id")) is not None:
        policies = [p for p in policies if p.id == pid]
    if (vid := call.get("volumeid")) is not None:
        policies = [p for p in policies if p.volumeid == vid]
    return call.list_response("snapshotpolicy", policies, lambda p: render_policy(call, p))


@async_api(
    "updateSnapshotPolicy",
    "user.snapshot.UpdateSnapshotPolicyCmd",
    params=(
        _ID,
        Param("fordisplay", "boolean", description="show the policy to the end user or not"),
        Param("customid", description="an optional field, for the policy's custom id"),
    ),
    description="Updates the snapshot policy.",
)
async def update_snapshot_policy(call: Call) -> JobPlan:
    pid = call.get("id")
    if pid is None:
        raise invalid_parameter("Please specify the id of the snapshot policy to update")
    policy = call.world.snapshot_policies[pid]
    owner = call.world.volumes[policy.volumeid].account_id

    async def run() -> Json:
        return {"snapshotpolicy": render_policy(call, policy)}

    desc = f"Updating snapshot policy: {policy.id}"
    return JobPlan(run, "SNAPSHOTPOLICY.UPDATE", desc, owner, "SnapshotPolicy", policy.id)


@api(
    "deleteSnapshotPolicies",
    "user.snapshot.DeleteSnapshotPoliciesCmd",
    params=(
        _ID,
        Param("ids", "list", entity="snapshotpolicy", description="list of snapshot policy IDs"),
    ),
    description="Deletes snapshot policies for the account.",
)
async def delete_snapshot_policies(call: Call) -> Json:
    ids = [i for i in [call.get("id"), *(call.get("ids") or "").split(",")] if i]
    if not ids:
        raise invalid_parameter("Either of param id or ids must be specified")
    if call.get("id") and call.get("ids"):
        raise invalid_parameter("Either of param id or ids must be specified, not both")
    w = call.world
    for pid in ids:
        policy = w.snapshot_policies.pop(pid)
        vol = w.volumes.get(policy.volumeid)
        await call.emitter.action(
            "SNAPSHOTPOLICY.DELETE",
            "Completed",
            f"Successfully deleted snapshot policy with Id: {policy.id}",
            user_id=call.user.id,
            account_id=vol.account_id if vol else call.account.id,
            entity="SnapshotPolicy",
            entity_uuid=policy.id,
        )
    return {"success": True}
