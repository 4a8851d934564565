"""What one ``SnapshotPolicy`` looks like in CloudStack right now: its volumes, its
snapshots in the primary zone and its copies in each DR zone.

Read by the service on every sweep and by ``csfabric dr status`` (which runs without the
service), so both judge the same rows with the same :mod:`~csfabric.replication.logic`.
Every list is paged by the client.  Snapshots are found by the policy's ``csfabric:policy``
tag; a DR copy is listed with ``zoneid=<DR zone> showunique=false`` (one row per store,
``datastorestate`` says whether that zone's copy is complete).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from csfabric.cloudstack import CloudStackClient
from csfabric.dr import Copy, SnapshotPolicy, VolumeRef
from csfabric.kernel import ConfigError
from csfabric.replication.logic import (
    POLICY_TAG,
    Row,
    VolumeView,
    copy_from_row,
    merge_copies,
    parse_date,
    tags_of,
)


def volume_ref(row: Row) -> VolumeRef:
    """What the policy's selector needs of a ``listVolumes`` row."""
    return VolumeRef(
        id=str(row["id"]),
        name=str(row.get("name", "")),
        zone_id=str(row.get("zoneid", "")),
        zone_name=row.get("zonename"),
        type=str(row.get("type", "DATADISK")),
        account=row.get("account"),
        project=row.get("project"),
        project_id=row.get("projectid"),
        domain_path=row.get("domainpath"),
        tags=tags_of(row),
        virtualmachine_id=row.get("virtualmachineid"),
    )


@dataclass(frozen=True)
class Zone:
    id: str
    name: str


class Zones:
    """Zone names and ids (a policy may give either), read once and on a miss."""

    def __init__(self, client: CloudStackClient) -> None:
        self.client = client
        self._known: dict[str, Zone] = {}

    async def refresh(self) -> list[Zone]:
        rows = await self.client.list("listZones")
        zones = [Zone(str(r["id"]), str(r.get("name", r["id"]))) for r in rows]
        self._known = {key: z for z in zones for key in (z.id, z.name)}
        return zones

    async def get(self, name_or_id: str) -> Zone:
        if name_or_id not in self._known:
            await self.refresh()
        zone = self._known.get(name_or_id)
        if zone is None:
            raise ConfigError(f"zone {name_or_id!r} is not in listZones")
        return zone


@dataclass
class PolicyView:
    name: str
    spec: SnapshotPolicy
    primary: Zone
    dr_zones: list[Zone]
    volumes: list[VolumeView]
    local: list[Copy]
    dr: dict[str, list[Copy]] = field(default_factory=dict)  # zone id → copies

    @property
    def measured_in(self) -> Zone:
        """Where the achieved RPO is measured: the first DR zone, else the primary."""
        return self.dr_zones[0] if self.dr_zones else self.primary

    @property
    def measured(self) -> list[Copy]:
        return self.dr[self.dr_zones[0].id] if self.dr_zones else self.local


async def list_copies(client: CloudStackClient, policy: str, zone: Zone) -> list[Copy]:
    rows = await client.list(
        "listSnapshots",
        zoneid=zone.id,
        showunique="false",
        listall="true",
        tags=[{"key": POLICY_TAG, "value": policy}],
    )
    return merge_copies(copy_from_row(r, zone.id) for r in rows)


async def read_policy(
    client: CloudStackClient,
    zones: Zones,
    name: str,
    spec: SnapshotPolicy,
    applied: datetime | None = None,
) -> PolicyView:
    """The policy's volumes and copies now; ``applied``: when the policy was applied (a
    volume never copied is not counted as exposed from before that)."""
    primary = await zones.get(spec.selector.zone)
    dr_zones = [await zones.get(z) for z in spec.copy_to]
    rows = await client.list("listVolumes", zoneid=primary.id, listall="true")
    volumes = []
    for row in rows:
        ref = volume_ref(row)
        if spec.selects(ref):
            created = parse_date(row["created"]) if row.get("created") else None
            since = max((t for t in (created, applied) if t is not None), default=None)
            volumes.append(VolumeView(ref, since))
    local = await list_copies(client, name, primary)
    view = PolicyView(name, spec, primary, dr_zones, volumes, local)
    for zone in dr_zones:
        view.dr[zone.id] = await list_copies(client, name, zone)
    return view


__all__ = ["PolicyView", "Zone", "Zones", "list_copies", "read_policy", "volume_ref"]
