"""What ``csfabric dr plan`` and ``dr drill`` read: SnapshotPolicies and the cloud's listings.

Policies come from YAML files (``--policies``) or the policy store in NATS.  Listings come
through :class:`~csfabric.cloudstack.CloudStackClient`, each twice (``listall=true`` for
accounts, ``projectid=-1`` for projects: CloudStack never mixes the two), and become the
plain rows :func:`csfabric.dr.plan` reads.  A listing the cloud does not have (432, e.g. a
simulator without ``listTemplates``) becomes ``None`` so the plan says what it assumed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from csfabric.cloudstack import CloudStackApiError, CloudStackClient, CloudStackSettings, Snapshot
from csfabric.devstack import connect_once
from csfabric.dr import (
    BACKED_UP,
    KIND,
    STORE_READY,
    Copy,
    Inventory,
    Network,
    Offering,
    PlanVm,
    SnapshotPolicy,
    SnapshotVolume,
    Template,
    VolumeRef,
)
from csfabric.kernel import ConfigError, FabricSettings, parse_clock
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import PolicyStore, load_policies

UNKNOWN_COMMAND = 432
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def read_policies(
    paths: Sequence[Path], only: str | None, settings: FabricSettings
) -> dict[str, SnapshotPolicy]:
    """SnapshotPolicies by name, from ``paths`` or else from the policy store."""
    found: dict[str, SnapshotPolicy] = {}
    if paths:
        for loaded in load_policies(list(paths)):
            doc = loaded.document
            if doc.kind == KIND and isinstance(doc.spec, SnapshotPolicy):
                found[doc.metadata.name] = doc.spec
    else:
        nc = await connect_once(settings.nats_url)
        bus = Bus(nc, service="dr", clock=parse_clock(settings.clock))
        try:
            found = await store_policies(bus)
        finally:
            await bus.close()
    if only is not None:
        if only not in found:
            known = ", ".join(sorted(found)) or "none"
            raise ConfigError(f"no SnapshotPolicy named {only!r} (known: {known})")
        found = {only: found[only]}
    return found


async def store_policies(bus: Bus) -> dict[str, SnapshotPolicy]:
    """Every SnapshotPolicy in the store, paused ones too: pausing stops new snapshots, it
    does not make the copies already in the DR zone any less worth recovering."""
    found: dict[str, SnapshotPolicy] = {}
    for stored in await PolicyStore(bus).list():
        spec = stored.spec() if stored.kind == KIND else None
        if isinstance(spec, SnapshotPolicy):
            found[stored.name] = spec
    return found


async def _both(client: CloudStackClient, command: str, **params: Any) -> list[dict[str, Any]]:
    """Account resources and project resources (CloudStack lists them apart)."""
    rows = await client.list(command, listall="true", **params)
    rows += await client.list(command, listall="true", projectid="-1", **params)
    return rows


async def _optional(rows: Awaitable[list[dict[str, Any]]]) -> list[dict[str, Any]] | None:
    try:
        return list(await rows)
    except CloudStackApiError as error:
        if error.errorcode == UNKNOWN_COMMAND:
            return None
        raise


def _tags(row: dict[str, Any]) -> dict[str, str]:
    return {str(t["key"]): str(t.get("value", "")) for t in row.get("tags") or [] if "key" in t}


def volume_ref(row: dict[str, Any]) -> VolumeRef:
    return VolumeRef(
        id=row["id"],
        name=row.get("name", ""),
        zone_id=row.get("zoneid", ""),
        zone_name=row.get("zonename"),
        type=row.get("type", "DATADISK"),
        account=row.get("account"),
        project=row.get("project"),
        project_id=row.get("projectid"),
        domain_path=row.get("domainpath"),
        tags=_tags(row),
        virtualmachine_id=row.get("virtualmachineid"),
    )


def plan_vm(row: dict[str, Any]) -> PlanVm:
    nics = [n for n in row.get("nic") or [] if n.get("networkid")]
    return PlanVm(
        id=row["id"],
        name=row.get("name", ""),
        zone_id=row.get("zoneid", ""),
        service_offering_id=row.get("serviceofferingid"),
        service_offering_name=row.get("serviceofferingname"),
        template_id=row.get("templateid"),
        template_name=row.get("templatename"),
        network_ids=tuple(n["networkid"] for n in nics),
        network_names=tuple(n.get("networkname", "") for n in nics if n.get("networkname")),
        account=row.get("account"),
        domain_id=row.get("domainid"),
        project_id=row.get("projectid"),
    )


def snapshot_volume(row: dict[str, Any]) -> SnapshotVolume:
    return SnapshotVolume(
        name=row.get("volumename") or row.get("volumeid", ""),
        type=row.get("volumetype") or "DATADISK",
        account=row.get("account"),
        domain_id=row.get("domainid"),
        project_id=row.get("projectid"),
    )


def dr_copy(row: dict[str, Any]) -> Copy:
    """A row of ``listSnapshots zoneid=Z showunique=false``: complete when that store's copy
    is Ready; a row without ``datastorestate`` (showunique ignored) by the snapshot's state."""
    store = row.get("datastorestate")
    done = store == STORE_READY if store is not None else row.get("state") == BACKED_UP
    state = BACKED_UP if done else str(store or row.get("state") or "unknown")
    return Copy(
        snapshot_id=row["id"],
        volume_id=row.get("volumeid", ""),
        zone_id=row.get("zoneid", ""),
        created=_created(row),
        state=state,
        policy=_tags(row).get("csfabric:policy"),
    )


def _created(row: dict[str, Any]) -> datetime:
    # CloudStack's own date format (2024-11-28T09:15:00+0100), as the typed model reads it.
    return Snapshot.model_validate(row).created or EPOCH


def _zone(zones: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    for zone in zones:
        if wanted in (zone.get("id"), zone.get("name")):
            return zone
    names = ", ".join(sorted(str(z.get("name")) for z in zones)) or "none"
    raise ConfigError(f"no zone {wanted!r} in this cloud (zones: {names})")


async def read_inventory(client: CloudStackClient, zone: str) -> Inventory:
    """Every listing the plan needs, for recovery into ``zone`` (name or id)."""
    dr = _zone(await client.list("listZones"), zone)
    volumes = await _both(client, "listVolumes")
    vms = await _both(client, "listVirtualMachines")
    snaps = await _both(client, "listSnapshots", zoneid=dr["id"], showunique="false")
    templates = await _optional(
        client.list("listTemplates", templatefilter="executable", zoneid=dr["id"])
    )
    networks = await _optional(_both(client, "listNetworks", zoneid=dr["id"]))
    offerings = await _optional(client.list("listServiceOfferings"))
    return Inventory(
        dr_zone_id=dr["id"],
        dr_zone_name=dr.get("name", dr["id"]),
        volumes=[volume_ref(v) for v in volumes if v.get("state") != "Destroy"],
        domain_ids={v["id"]: v["domainid"] for v in volumes if v.get("domainid")},
        vms={v["id"]: plan_vm(v) for v in vms},
        dr_copies=[dr_copy(s) for s in snaps if s.get("zoneid") == dr["id"]],
        # Rows that still name the volume win over rows that do not.
        snapshot_volumes={
            s["volumeid"]: snapshot_volume(s)
            for s in sorted(snaps, key=lambda s: bool(s.get("volumename")))
            if s.get("volumeid")
        },
        templates=None
        if templates is None
        else [Template(t["id"], t.get("name", ""), t.get("zoneid") or None) for t in templates],
        networks=None
        if networks is None
        else [
            Network(
                n["id"],
                n.get("name", ""),
                n.get("zoneid", ""),
                n.get("account"),
                n.get("projectid"),
                _tags(n),
                n.get("type"),
            )
            for n in networks
        ],
        offerings=None
        if offerings is None
        else [
            Offering(
                o["id"],
                o.get("name", ""),
                tuple(z for z in str(o.get("zoneid") or "").split(",") if z),
            )
            for o in offerings
        ],
    )


def open_client(settings: FabricSettings) -> CloudStackClient:
    """The client for the configured cloud (flags > environment > ``dev.json``), on the
    fabric clock, so a drill next to ``csfabric dev --time-scale 60`` times fabric minutes."""
    return CloudStackClient(CloudStackSettings(), clock=parse_clock(settings.clock))


__all__ = [
    "dr_copy",
    "open_client",
    "plan_vm",
    "read_inventory",
    "read_policies",
    "store_policies",
    "volume_ref",
]
