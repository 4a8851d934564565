"""What the snapshots service keeps current: the volumes in reach, their projects, the zones.

:class:`Inventory` is filled by a paged ``listVolumes listall=true`` (and ``projectid=-1``
for project volumes, which CloudStack lists only when asked) at start and every
``resync_interval``; in between, the volume and project action events of the backbone
(``csfabric.cloudstack.action.VOLUME.>``, ``…PROJECT.>``) make it look the one resource up
again, so a created, destroyed, attached, detached or migrated volume is seen at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from csfabric.cloudstack import CloudStackClient
from csfabric.dr import VolumeRef
from csfabric.kernel import Clock, CloudEvent, get_logger
from csfabric.kernel.bus import Delivery
from csfabric.snapshots.logic import snapshottable, volume_ref

log = get_logger(__name__)

VOLUME_EVENTS = "csfabric.cloudstack.action.VOLUME.>"
PROJECT_EVENTS = "csfabric.cloudstack.action.PROJECT.>"
# Project states in which CloudStack refuses new resources (createSnapshot answers 531).
_ACTIVE = "Active"


class Zones:
    """Zone names and ids (policies may name either; CloudStack's calls want ids)."""

    def __init__(self, client: CloudStackClient) -> None:
        self.client = client
        self.by_name: dict[str, str] = {}

    async def load(self) -> None:
        self.by_name = {z.name: z.id for z in await self.client.list_zones()}

    def id_of(self, zone: str) -> str:
        return self.by_name.get(zone, zone)


class Inventory:
    """The volumes CloudStack has now (snapshottable ones only) and their projects' states."""

    def __init__(self, client: CloudStackClient, clock: Clock) -> None:
        self.client = client
        self.clock = clock
        self.volumes: dict[str, VolumeRef] = {}
        self.projects: dict[str, str] = {}  # project id → state
        self.version = 0  # bumped on every change: the scheduler re-plans on it
        self.changed = asyncio.Event()

    async def resync(self) -> None:
        rows = await self.client.list("listVolumes", listall="true")
        rows += await self.client.list("listVolumes", listall="true", projectid="-1")
        projects = await self.client.list("listProjects", listall="true")
        self.volumes = {str(r["id"]): volume_ref(r) for r in rows if snapshottable(r)}
        self.projects = {str(p["id"]): str(p.get("state", _ACTIVE)) for p in projects}
        self._bump()
        log.debug("inventory: %d volumes, %d projects", len(self.volumes), len(self.projects))

    async def refresh_volume(self, volume_id: str) -> None:
        row = await self._one("listVolumes", volume_id)
        if row is None or not snapshottable(row):
            if self.volumes.pop(volume_id, None) is not None:
                self._bump()
            return
        self.volumes[volume_id] = volume_ref(row)
        self._bump()

    async def refresh_project(self, project_id: str) -> None:
        rows = await self.client.list("listProjects", listall="true", id=project_id)
        if rows:
            self.projects[project_id] = str(rows[0].get("state", _ACTIVE))
        else:
            self.projects.pop(project_id, None)
        self._bump()

    def project_state(self, volume: VolumeRef) -> str | None:
        """The state of the volume's project when it is not Active (None: no obstacle)."""
        if volume.project_id is None:
            return None
        state = self.projects.get(volume.project_id, _ACTIVE)
        return None if state == _ACTIVE else state

    def mark_project(self, project_id: str, state: str) -> None:
        """What a 531 told us, until an event or the next resync says otherwise."""
        self.projects[project_id] = state

    async def _one(self, command: str, volume_id: str) -> dict[str, Any] | None:
        for extra in ({}, {"projectid": "-1"}):
            rows = await self.client.list(command, listall="true", id=volume_id, **extra)
            if rows:
                return rows[0]
        return None

    def _bump(self) -> None:
        self.version += 1
        self.changed.set()

    async def run_resync(self, every: float) -> None:
        """Resync every ``every`` fabric seconds; a failed resync keeps what is known."""
        while True:
            await self.clock.sleep(every)
            try:
                await self.resync()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("inventory resync failed: %s: %s", type(error).__name__, error)


def _completed_entity(event: CloudEvent) -> str | None:
    data = event.data if isinstance(event.data, dict) else {}
    if data.get("status") not in (None, "Completed"):
        return None  # Created/Scheduled/Started: the resource is not there yet
    entity = data.get("entityuuid") or event.subject
    return str(entity) if entity else None


class VolumeEvents:
    """Handlers of the volume and project action events (queue group: any replica)."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory

    async def volume(self, event: CloudEvent, delivery: Delivery) -> None:
        volume_id = _completed_entity(event)
        if volume_id is not None:
            await self.inventory.refresh_volume(volume_id)

    async def project(self, event: CloudEvent, delivery: Delivery) -> None:
        project_id = _completed_entity(event)
        if project_id is not None:
            await self.inventory.refresh_project(project_id)


__all__ = ["PROJECT_EVENTS", "VOLUME_EVENTS", "Inventory", "VolumeEvents", "Zones"]
