"""Retention per zone: the policy's own snapshots beyond ``retain``, oldest first.

Every ``sweep_interval`` (on the lease holder), for each policy and each of its zones:
``listSnapshots zoneid=Z showunique=false`` of the snapshots tagged ``csfabric:policy=<name>``
(one row per store; a copy counts as complete only where its store is Ready), then
:func:`csfabric.dr.to_retire` per volume — never another's snapshot, never one still being
made or copied, never a volume's newest complete copy in that zone — and one fenced
``deleteSnapshot id=… zoneid=…`` per copy retired (only that zone's copy goes).  Each
deletion, and each sweep's summary of what was kept, is an audit record.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from csfabric.cloudstack import CloudStackClient
from csfabric.dr import SnapshotPolicy
from csfabric.kernel import Lease, LeaseLost, get_logger
from csfabric.kernel.service import ServiceContext
from csfabric.snapshots.attempt import Attempts
from csfabric.snapshots.handlers import Zones
from csfabric.snapshots.logic import TAG_POLICY, copies_in_zone, keys_of, retire
from csfabric.snapshots.scheduler import Scheduler
from csfabric.snapshots.settings import SnapshotsSettings

log = get_logger(__name__)


class Retention:
    def __init__(
        self,
        ctx: ServiceContext,
        settings: SnapshotsSettings,
        client: CloudStackClient,
        zones: Zones,
        lease: Lease,
        scheduler: Scheduler,
        attempts: Attempts,
    ) -> None:
        self.ctx, self.settings, self.client = ctx, settings, client
        self.zones, self.lease, self.scheduler, self.attempts = zones, lease, scheduler, attempts
        self._deleting: set[tuple[str, str]] = set()  # (snapshot, zone) asked, not yet gone
        self._kept: dict[tuple[str, str], int] = {}  # (policy, zone) → copies at last sweep
        self.sweeps = 0

    async def run(self) -> None:
        while True:
            await self.ctx.clock.sleep(self.settings.sweep_interval)
            try:
                await self.sweep()
            except (asyncio.CancelledError, LeaseLost):
                raise
            except Exception as error:  # CloudStack away: the next sweep catches up
                log.warning("retention sweep failed: %s: %s", type(error).__name__, error)

    async def sweep(self) -> None:
        for name, version, policy in self.scheduler.policies():
            for zone in policy.zones:
                await self._zone(name, version, policy, self.zones.id_of(zone))
        self.sweeps += 1

    async def _rows(self, name: str, zone_id: str) -> list[dict[str, Any]]:
        tags = [{"key": TAG_POLICY, "value": name}]
        rows: list[dict[str, Any]] = []
        for extra in ({}, {"projectid": "-1"}):
            rows += await self.client.list(
                "listSnapshots",
                listall="true",
                zoneid=zone_id,
                showunique="false",
                tags=tags,
                **extra,
            )
        return rows

    async def _zone(self, name: str, version: int, policy: SnapshotPolicy, zone_id: str) -> None:
        now = self.ctx.clock.now()
        rows = await self._rows(name, zone_id)
        if zone_id == self.zones.id_of(policy.selector.zone):
            self.attempts.done |= keys_of(rows)
        projects = {str(r["id"]): r.get("projectid") for r in rows}
        copies = copies_in_zone(rows, zone_id)
        present = {(c.snapshot_id, zone_id) for c in copies}
        self._deleting = {d for d in self._deleting if d[1] != zone_id or d in present}
        retired = [
            c
            for c in retire(policy, name, zone_id, copies, now)
            if (c.snapshot_id, zone_id) not in self._deleting
        ]
        for copy in retired:
            params: dict[str, Any] = {"id": copy.snapshot_id, "zoneid": zone_id}
            if projects.get(copy.snapshot_id):
                params["projectid"] = projects[copy.snapshot_id]
            await self.lease.fence()
            answer = await self.client.call("deleteSnapshot", **params)
            self._deleting.add((copy.snapshot_id, zone_id))
            await self.ctx.auditor.emit(
                action_key=f"snapshots:delete:{copy.snapshot_id}:{zone_id}",
                decision="snapshot-deleted",
                reason=f"beyond retain (count {policy.retain.count}, maxAge "
                f"{policy.retain.max_age}) in zone {zone_id}, oldest first",
                policy=name,
                policy_version=version,
                action="deleteSnapshot",
                result={"jobid": answer.get("jobid")},
                evidence={
                    "snapshot": copy.snapshot_id,
                    "volume_id": copy.volume_id,
                    "zone_id": zone_id,
                    "created": copy.created.isoformat(),
                    "state": copy.state,
                },
            )
        kept = len(copies) - len(retired)
        if retired or self._kept.get((name, zone_id)) != kept:
            self._kept[(name, zone_id)] = kept
            per_volume = Counter(c.volume_id for c in copies)
            await self.ctx.auditor.emit(
                action_key=f"snapshots:retain:{name}:{zone_id}:{now.isoformat()}",
                decision="snapshot-retained",
                reason=f"{kept} copies kept in zone {zone_id}, {len(retired)} retired",
                policy=name,
                policy_version=version,
                evidence={
                    "zone_id": zone_id,
                    "kept": kept,
                    "retired": [c.snapshot_id for c in retired],
                    "copies_per_volume": dict(per_volume) if len(per_volume) <= 200 else None,
                    "in_flight": sum(1 for c in copies if not c.complete),
                },
            )


__all__ = ["Retention"]
