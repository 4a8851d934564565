"""Snapshot policies beside createSnapshotPolicy (which lives in _snapshots): list, update
(``fordisplay``/``customid`` only, as UpdateSnapshotPolicyCmd), delete.

A schedule change is a second createSnapshotPolicy for the same (volume, intervaltype):
CloudStack updates the existing policy then, it has no other way to.
"""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json
from csfabric.cloudstack.simulator._errors import invalid_parameter
from csfabric.cloudstack.simulator._registry import JobPlan, Param, api, async_api
from csfabric.cloudstack.simulator._state import SnapshotPolicy

_ID = Param("id", "uuid", entity="snapshotpolicy", description="the ID of the snapshot policy")
# ZoneResponse's primitive booleans, written even in the bare zone items of a policy.
_BARE_ZONE = {"nsxenabled": False, "multiarch": False, "routedmodeenabled": False}


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
