"""The replication work on the lease holder: sweep the DR zones, copy, confirm, prove the RPO.

Each :meth:`Replicator.tick` reads every ``SnapshotPolicy`` from CloudStack
(:func:`~csfabric.replication.reader.read_policy`), records the copy lag of copies that
completed, calls ``copySnapshot`` for complete snapshots still missing in a DR zone after
the grace period (once per (policy, snapshot, zone) through the action ledger, failures
retried with backoff), and at each window boundary audits the policy's RPO evidence and
raises or clears breaches.  Every side effect is fenced by the lease just before it acts.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from csfabric.cloudstack import CloudStackClient
from csfabric.dr import (
    KIND,
    SnapshotPolicy,
    window_at,
)
from csfabric.events import ActionEventData, TypedEvent
from csfabric.kernel import (
    ActionLedger,
    CsfabricError,
    Lease,
    LeaseLost,
    TransientError,
    action_key,
    get_logger,
)
from csfabric.kernel.bus import Delivery
from csfabric.kernel.policy import StoredPolicy
from csfabric.kernel.service import ServiceContext
from csfabric.replication.copier import Copier
from csfabric.replication.evidence import EvidenceWriter
from csfabric.replication.logic import (
    copies_to_make,
    new_lags,
)
from csfabric.replication.reader import PolicyView, Zones, read_policy
from csfabric.replication.settings import SERVICE, ReplicationSettings
from csfabric.replication.state import DrState

log = get_logger(__name__)

LEASE_NAME = "replication"


class Replicator:
    def __init__(
        self,
        ctx: ServiceContext,
        settings: ReplicationSettings,
        client: CloudStackClient,
        state: DrState,
        ledger: ActionLedger,
        *,
        lease: Lease | None = None,
    ) -> None:
        self.ctx, self.settings, self.client = ctx, settings, client
        self.state, self.ledger, self.lease = state, ledger, lease
        self.zones = Zones(client)
        self.watched: set[tuple[str, str]] = set()  # DR copies seen missing or incomplete
        self.recorded: dict[str, set[tuple[str, str]]] = {}  # lags already observed
        self.previous_sweep: datetime | None = None
        self.evaluated: dict[str, datetime] = {}  # policy → last boundary evaluated
        self.views: dict[str, PolicyView] = {}
        self.copied_at: dict[str, datetime] = {}  # snapshot → its SNAPSHOT.COPY Completed
        self.evidence = EvidenceWriter(ctx, state, self._fence, chunk=settings.evidence_chunk)
        self.copier = Copier(ctx, settings, client, ledger, self._fence)

    def policies(self) -> list[tuple[StoredPolicy, SnapshotPolicy]]:
        found = []
        for stored in self.ctx.policies.all(KIND):
            spec = stored.spec()
            if isinstance(spec, SnapshotPolicy):
                found.append((stored, spec))
        return found

    async def _fence(self) -> None:
        if self.lease is not None:
            await self.lease.fence()

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick for ever (until the lease is lost or the service stops)."""
        while True:
            try:
                await self.tick()
            except (asyncio.CancelledError, LeaseLost):
                raise
            except Exception as error:  # CloudStack or NATS away: the next tick catches up
                log.warning("replication tick failed: %s: %s", type(error).__name__, error)
            await self.ctx.clock.sleep(self.next_sleep())

    def next_sleep(self) -> float:
        """Until the next sweep, or the next window boundary if that comes first."""
        now = self.ctx.clock.now()
        wait = self.settings.sweep_interval
        for _, spec in self.policies():
            end = window_at(now, spec.every, spec.timezone).end
            wait = min(wait, (end - now).total_seconds())
        return max(wait, 0.001)

    async def tick(self) -> None:
        """One sweep, then the evidence of every policy whose window turned since the last."""
        now = self.ctx.clock.now()
        await self.sweep(now)
        for stored, spec in self.policies():
            boundary = window_at(now, spec.every, spec.timezone).start
            last = self.evaluated.get(stored.name)
            if stored.name in self.views and (last is None or boundary > last):
                view = self.views[stored.name]
                await self.evidence.evaluate(stored, spec, view, boundary, self.copier.last_error)
                self.evaluated[stored.name] = boundary

    async def on_copy_event(self, event: TypedEvent[ActionEventData], delivery: Delivery) -> None:
        """SNAPSHOT.COPY Completed: when the copy finished, for an exact lag.  Only noted
        (the next sweep confirms the copy from CloudStack), so any replica may take it."""
        data = event.data
        if data.status == "Completed" and not data.failed and data.entityuuid:
            self.copied_at[data.entityuuid] = data.event_time

    # -- copies ---------------------------------------------------------------------------

    async def sweep(self, now: datetime) -> None:
        policies = self.policies()
        names = {stored.name for stored, _ in policies}  # a deleted policy is forgotten
        self.views = {k: v for k, v in self.views.items() if k in names}
        for stored, spec in policies:
            try:
                view = await read_policy(
                    self.client, self.zones, stored.name, spec, stored.applied_at
                )
            except (TransientError, CsfabricError) as error:
                if isinstance(error, LeaseLost):
                    raise
                log.warning("policy %s not read: %s", stored.name, error)
                self.views.pop(stored.name, None)
                continue
            self.views[stored.name] = view
            await self._confirm(stored, view, now)
            s = self.settings
            for zone in view.dr_zones:
                dr = view.dr[zone.id]
                for task in copies_to_make(
                    view.local,
                    dr,
                    zone.id,
                    now,
                    grace=s.grace,
                    horizon=s.horizon,
                    attempts=self.copier.attempts,
                    max_attempts=s.max_attempts,
                ):
                    if await self.copier.copy(stored, view, task):
                        self.watched.add((task.snapshot_id, task.zone_id))
        self.previous_sweep = now
        self._forget()

    def _forget(self) -> None:
        """Drop what is known of snapshots no policy lists any more (retired, deleted), so
        the in-memory sets stay the size of what is in CloudStack."""
        live: set[tuple[str, str]] = set()
        for view in self.views.values():
            for zone in view.dr_zones:
                live.update((c.snapshot_id, zone.id) for c in [*view.local, *view.dr[zone.id]])
        self.watched &= live
        self.copier.forget(live)
        listed = {snapshot for snapshot, _ in live}
        self.copied_at = {k: v for k, v in self.copied_at.items() if k in listed}
        for name, recorded in self.recorded.items():
            if name in self.views:
                recorded &= live

    async def _confirm(self, stored: StoredPolicy, view: PolicyView, now: datetime) -> None:
        name = stored.name
        if name not in self.recorded:
            self.recorded[name] = await self.state.recorded_lags(name)
        recorded = self.recorded[name]
        for zone in view.dr_zones:
            dr = view.dr[zone.id]
            lags = new_lags(dr, self.watched, recorded, self.previous_sweep, now, self.copied_at)
            # Seen here not yet complete (made, copying, or not there): its completion, when a
            # later sweep sees it, is a lag observation.
            complete = {c.snapshot_id for c in dr if c.complete}
            self.watched.update(
                (c.snapshot_id, zone.id)
                for c in [*view.local, *dr]
                if c.snapshot_id not in complete
            )
            if not lags:
                continue
            await self._fence()
            await self.state.add_lags(name, lags, now, self.settings.lag_samples)
            for lag in lags:
                recorded.add((lag.snapshot_id, lag.zone_id))
                self.watched.discard((lag.snapshot_id, lag.zone_id))
                await self.ctx.auditor.emit(
                    action_key=action_key(SERVICE, "confirmed", name, lag.snapshot_id, zone.id),
                    decision="copy-confirmed",
                    reason=f"snapshot {lag.snapshot_id} complete in {zone.name}"
                    f" {lag.seconds:.0f}s after it was created",
                    policy=name,
                    policy_version=stored.version,
                    evidence={"snapshot": lag.snapshot_id, "zone": zone.name, "lag_s": lag.seconds},
                )


__all__ = ["LEASE_NAME", "Replicator"]
