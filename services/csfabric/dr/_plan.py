"""Recovery plans: what to create in the DR zone, in which order, from which DR copy.

Given what the clouds lists show (volumes, their VMs, the DR zone's snapshot copies,
templates, networks, offerings) and the policies that copy to the DR zone, :func:`plan`
answers the steps ``csfabric dr drill`` (or an operator on a bad day) runs: one
``createVolume snapshotid=… zoneid=…`` per covered volume, from its newest complete copy
there, then one ``deployVirtualMachine`` per VM that owned such volumes (its offering, the
same template by name, a network in the DR zone) with the restored volumes to attach.
Whatever cannot be planned is a :class:`Blocked` row with its reason, never a silent gap.

Pure: plain rows in, a plan out, no clock (``now`` is given) and no CloudStack client.
A listing the cloud does not offer (an older simulator without ``listTemplates``) is
``None``: the plan then falls back to what the VM row says and notes the assumption.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from csfabric.dr._plan_rows import (
    Blocked,
    Inventory,
    PlanVm,
    RecoveryPlan,
    RedeployVm,
    RestoreVolume,
    SnapshotVolume,
)
from csfabric.dr._policy import SnapshotPolicy
from csfabric.dr._rules import Copy, newest_complete

# A DR-zone network tagged with this key names the primary network (name or id) it stands in for.
DR_NETWORK_TAG = "csfabric:dr-network"
NAME_PREFIX = "dr-"
_HOSTNAME_MAX = 63  # CloudStack VM names are host names


def dr_name(name: str) -> str:
    return (NAME_PREFIX + name)[:_HOSTNAME_MAX]


def covers_zone(policy: SnapshotPolicy, zone_id: str, zone_name: str) -> bool:
    return any(z in (zone_id, zone_name) for z in policy.copy_to)


def _owner(account: str | None, domain_id: str | None, project_id: str | None) -> dict[str, str]:
    """Who the new resource belongs to: the project, else the source's account."""
    if project_id:
        return {"projectid": project_id}
    if account and domain_id:
        return {"account": account, "domainid": domain_id}
    return {}


def plan(
    policies: Mapping[str, SnapshotPolicy], inventory: Inventory, now: datetime
) -> RecoveryPlan:
    """The recovery plan into ``inventory``'s DR zone for every volume ``policies`` cover."""
    inv = inventory
    chosen = {
        n: p
        for n, p in sorted(policies.items())
        if covers_zone(p, inv.dr_zone_id, inv.dr_zone_name)
    }
    copies: dict[str, list[Copy]] = {}
    for c in inv.dr_copies:
        if c.zone_id == inv.dr_zone_id:
            copies.setdefault(c.volume_id, []).append(c)
    restores: list[RestoreVolume] = []
    blocked: list[Blocked] = []
    seen: set[str] = set()
    for vol in sorted(inv.volumes, key=lambda v: (v.name, v.id)):
        policy = next((n for n, p in chosen.items() if p.selects(vol)), None)
        if policy is None or vol.id in seen:
            continue
        seen.add(vol.id)
        newest = newest_complete(copies.get(vol.id, ()))
        if newest is None:
            in_flight = len(copies.get(vol.id, ()))
            why = f"no complete copy in {inv.dr_zone_name}"
            why += f" ({in_flight} still copying)" if in_flight else ""
            blocked.append(Blocked("volume", vol.id, vol.name, why))
            continue
        vm = inv.vms.get(vol.virtualmachine_id or "")
        account = vm.account if vm else vol.account
        domain = vm.domain_id if vm else inv.domain_ids.get(vol.id)
        owner = _owner(account, domain, vol.project_id)
        restores.append(_restore(inv, vol.id, vol.name, vol.type, policy, newest, owner, now))
    notes: list[str] = []
    restores += _unlisted(inv, chosen, copies, {v.id for v in inv.volumes}, notes, now)
    vms = _redeploys(inv, restores, blocked, notes)
    return RecoveryPlan(
        inv.dr_zone_id,
        inv.dr_zone_name,
        now,
        tuple(chosen),
        tuple(restores),
        tuple(vms),
        tuple(blocked),
        tuple(dict.fromkeys(notes)),
    )


def _restore(
    inv: Inventory,
    volume_id: str,
    name: str,
    kind: str,
    policy: str,
    newest: Copy,
    owner: dict[str, str],
    now: datetime,
) -> RestoreVolume:
    params = {"name": dr_name(name), "snapshotid": newest.snapshot_id, "zoneid": inv.dr_zone_id}
    age = max((now - newest.created).total_seconds(), 0.0)
    return RestoreVolume(
        volume_id, name, kind, policy, newest.snapshot_id, newest.created, age, params | owner
    )


def _unlisted(
    inv: Inventory,
    chosen: Mapping[str, SnapshotPolicy],
    copies: Mapping[str, list[Copy]],
    listed: set[str],
    notes: list[str],
    now: datetime,
) -> list[RestoreVolume]:
    """Volumes listVolumes no longer shows (their zone is gone) but whose DR copies a chosen
    policy made (tag ``csfabric:policy``): restored from those, with the owner the snapshot
    rows name; no VM to put them on is known."""
    out: list[RestoreVolume] = []
    for volume_id, found in sorted(copies.items()):
        ours = [c for c in found if c.policy in chosen]
        newest = newest_complete(ours)
        if volume_id in listed or newest is None or newest.policy is None:
            continue
        known = inv.snapshot_volumes.get(volume_id) or SnapshotVolume(volume_id)
        owner = _owner(known.account, known.domain_id, known.project_id)
        out.append(
            _restore(inv, volume_id, known.name, known.type, newest.policy, newest, owner, now)
        )
        notes.append(
            f"volume {known.name} is not listed any more (is its zone gone?): restored from its "
            f"newest copy in {inv.dr_zone_name}, with no VM to attach it to"
        )
    return out


def _redeploys(
    inv: Inventory, restores: list[RestoreVolume], blocked: list[Blocked], notes: list[str]
) -> list[RedeployVm]:
    by_volume = {v.id: v for v in inv.volumes}
    owned: dict[str, list[RestoreVolume]] = {}
    for r in restores:
        listed = by_volume.get(r.volume_id)  # None: known only from its snapshots
        vm_id = listed.virtualmachine_id if listed else None
        if vm_id:
            owned.setdefault(vm_id, []).append(r)
    out: list[RedeployVm] = []
    for vm_id, restored in sorted(owned.items()):
        vm = inv.vms.get(vm_id)
        if vm is None:
            name = by_volume[restored[0].volume_id].name
            blocked.append(Blocked("vm", vm_id, name, "VM not found in listVirtualMachines"))
            continue
        step = _redeploy(inv, vm, restored, notes)
        if isinstance(step, Blocked):
            blocked.append(step)
        else:
            out.append(step)
    return out


def _redeploy(
    inv: Inventory, vm: PlanVm, restored: list[RestoreVolume], notes: list[str]
) -> RedeployVm | Blocked:
    own: list[str] = []
    offering = _offering(inv, vm, notes)
    if offering is None:
        wanted = vm.service_offering_name or vm.service_offering_id
        return Blocked("vm", vm.id, vm.name, f"offering {wanted} not in {inv.dr_zone_name}")
    template = _template(inv, vm, notes)
    if template is None:
        why = f"no template named {vm.template_name!r} in {inv.dr_zone_name}"
        return Blocked("vm", vm.id, vm.name, why)
    params = {
        "name": dr_name(vm.name),
        "displayname": dr_name(vm.name),
        "zoneid": inv.dr_zone_id,
        "serviceofferingid": offering,
        "templateid": template,
    }
    network = _network(inv, vm, own)
    if isinstance(network, Blocked):
        return network
    if network is not None:
        params["networkids"] = network
    else:
        notes.append(
            "listNetworks is not offered: VMs deploy into their account's default network "
            f"in {inv.dr_zone_name}"
        )
    params |= _owner(vm.account, vm.domain_id, vm.project_id)
    # Data disks first, by name; ROOT copies last (a VM cannot boot from a volume snapshot,
    # so a restored ROOT disk is attached as data for its files).
    ordered = sorted(restored, key=lambda r: (r.volume_type == "ROOT", r.volume_name))
    if any(r.volume_type == "ROOT" for r in ordered):
        own.append("ROOT restored as a data disk; the VM boots from its template")
    return RedeployVm(vm.id, vm.name, params, tuple(r.volume_id for r in ordered), tuple(own))


def _offering(inv: Inventory, vm: PlanVm, notes: list[str]) -> str | None:
    if inv.offerings is None:
        notes.append("listServiceOfferings is not offered: each VM keeps its offering id")
        return vm.service_offering_id
    usable = [o for o in inv.offerings if not o.zone_ids or inv.dr_zone_id in o.zone_ids]
    same = [o for o in usable if o.id == vm.service_offering_id]
    named = [o for o in usable if vm.service_offering_name and o.name == vm.service_offering_name]
    found = same or named
    return found[0].id if found else None


def _template(inv: Inventory, vm: PlanVm, notes: list[str]) -> str | None:
    if inv.templates is None:
        notes.append(
            "listTemplates is not offered: each VM keeps its template id (assumed cross-zone)"
        )
        return vm.template_id
    here = [t for t in inv.templates if t.zone_id in (None, inv.dr_zone_id)]
    # Same name first (a template registered per zone has one id per zone), then same id.
    named = sorted(
        (t for t in here if vm.template_name and t.name == vm.template_name), key=lambda t: t.id
    )
    same = [t for t in here if t.id == vm.template_id]
    found = named or same
    return found[0].id if found else None


def _network(inv: Inventory, vm: PlanVm, own: list[str]) -> str | Blocked | None:
    if inv.networks is None:
        return None
    here = sorted((n for n in inv.networks if n.zone_id == inv.dr_zone_id), key=lambda n: n.name)
    wanted = set(vm.network_names) | set(vm.network_ids)
    by_name = [n for n in here if n.name in vm.network_names]
    by_tag = [n for n in here if n.tags.get(DR_NETWORK_TAG) in wanted]
    if by_name or by_tag:
        return (by_name or by_tag)[0].id
    if vm.project_id:
        theirs = [n for n in here if n.project_id == vm.project_id]
    else:
        theirs = [n for n in here if n.account == vm.account and not n.project_id]
    if theirs:
        own.append(f"network {theirs[0].name}: the owner's network in {inv.dr_zone_name}")
        return theirs[0].id
    # A shared network is open to every account of its domain: the last resort.
    shared = [n for n in here if (n.type or "").lower() == "shared"]
    if shared:
        own.append(f"network {shared[0].name}: a shared network in {inv.dr_zone_name}")
        return shared[0].id
    names = ", ".join(vm.network_names) or "none"
    return Blocked(
        "vm",
        vm.id,
        vm.name,
        f"no network in {inv.dr_zone_name} named {names}, "
        f"tagged {DR_NETWORK_TAG}, owned by its account, or shared",
    )


__all__ = [
    "DR_NETWORK_TAG",
    "covers_zone",
    "dr_name",
    "plan",
]
