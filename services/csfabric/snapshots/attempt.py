"""One volume's snapshot in one window: gate, ledger, fenced call, retries, audit.

An attempt asks the action gate (dry run, pause, protection, blast radius), then runs the
``createSnapshot`` under the action ledger with the key (policy, volume, window): the
intent is recorded before the call, and the call is fenced by the scheduler's lease just
before it goes out.  The snapshot carries ``csfabric:policy`` and ``csfabric:key`` tags, so
a call whose answer was lost is found again (the ledger's reconcile step) instead of being
sent twice.  Transient failures are retried in the window with backoff; what CloudStack
refuses for good (531 suspended project, 535 limit, 431) is an audited skip and an alert,
not retried in that window; a window that ends without a snapshot is an audited miss.
"""

from __future__ import annotations

import json
from typing import Any

from csfabric.cloudstack import CloudStackApiError, CloudStackClient, CloudStackTransientError
from csfabric.dr import KIND, SnapshotPolicy, VolumeRef
from csfabric.kernel import (
    ActionLedger,
    ActionRefused,
    Lease,
    LeaseLost,
    PermanentError,
    RetryLater,
    TransientError,
    action_key,
    get_logger,
)
from csfabric.kernel.service import ServiceContext
from csfabric.snapshots.handlers import Inventory, Zones
from csfabric.snapshots.logic import (
    TAG_KEY,
    TAG_POLICY,
    Due,
    classify,
    key_parts,
    keys_of,
    may_retry,
    retry_delay,
)
from csfabric.snapshots.settings import SnapshotsSettings

log = get_logger(__name__)

ALERT_SKIPPED = "csfabric.alert.snapshots.skipped"


class Attempts:
    def __init__(
        self,
        ctx: ServiceContext,
        settings: SnapshotsSettings,
        client: CloudStackClient,
        inventory: Inventory,
        zones: Zones,
        ledger: ActionLedger,
        lease: Lease,
    ) -> None:
        self.ctx, self.settings, self.client = ctx, settings, client
        self.inventory, self.zones, self.ledger, self.lease = inventory, zones, ledger, lease
        self.done: set[str] = set()  # keys whose snapshot CloudStack has (tags) or we made

    async def learn_done(self, name: str, policy: SnapshotPolicy) -> None:
        zone = self.zones.id_of(policy.selector.zone)
        tags = [{"key": TAG_POLICY, "value": name}]
        for extra in ({}, {"projectid": "-1"}):
            rows = await self.client.list(
                "listSnapshots", listall="true", zoneid=zone, tags=tags, **extra
            )
            self.done |= keys_of(rows)

    async def run(self, due: Due) -> None:
        stored = self.ctx.policies.get(KIND, due.policy)
        volume = self.inventory.volumes.get(due.volume_id)
        if stored is None or volume is None:
            return  # the policy or the volume went away since it was planned
        policy = stored.spec()
        if not isinstance(policy, SnapshotPolicy) or not policy.selects(volume):
            return
        key = action_key(*key_parts(due.policy, volume.id, due.window))
        if key in self.done:
            return
        record = _Record(self, due, volume, key, stored.version)
        if not may_retry(self.ctx.clock.now(), 0.0, due.window, self._margin):
            # Reached only after its window (overload, or a lease taken over late): a
            # snapshot now would belong to the next window's period, so it is a miss.
            await record.missed("not reached before the window ended")
            return
        decision = await self.ctx.gate.check(KIND, due.policy, tags=volume.tags)
        if not decision.allowed:
            await record.audit(decision.outcome, decision.reason, decision.audit_outcome)
            return
        project_state = self.inventory.project_state(volume)
        if project_state is not None:
            why = f"project {volume.project} is {project_state}: CloudStack refuses (531)"
            await record.skip(531, why)
            return
        await self._retry(policy, volume, key, record)

    async def _retry(
        self, policy: SnapshotPolicy, volume: VolumeRef, key: str, record: _Record
    ) -> None:
        attempt = 0
        last: Exception
        while True:
            attempt += 1
            record.attempts = attempt
            try:
                result = await self.ledger.run(
                    key,
                    lambda: self._create(policy, volume, key, record),
                    reconcile=lambda: self._find(volume, key),
                )
            except LeaseLost:
                raise
            except ActionRefused as refused:
                await record.skip(None, f"refused before in this window: {refused}")
                return
            except (CloudStackApiError, CloudStackTransientError) as error:
                if classify(error.errorcode) == "skip":
                    if error.errorcode == 531 and volume.project_id:
                        self.inventory.mark_project(volume.project_id, "Suspended")
                    await record.skip(error.errorcode, error.errortext)
                    return
                if isinstance(error, PermanentError):
                    await record.skip(error.errorcode, error.errortext)
                    return
                last, delay = error, self._delay(attempt)
            except RetryLater as later:
                last, delay = later, later.after
            except TransientError as error:
                last, delay = error, self._delay(attempt)
            except PermanentError as error:
                await record.skip(None, str(error))
                return
            else:
                self.done.add(key)
                await record.requested(result.outcome, result.source)
                return
            if not may_retry(self.ctx.clock.now(), delay, record.due.window, self._margin):
                await record.missed(f"{type(last).__name__}: {last}")
                return
            log.info("snapshot of %s: %s, retry in %.0fs", volume.name, last, delay)
            await self.ctx.clock.sleep(delay)

    @property
    def _margin(self) -> float:
        return self.settings.window_margin

    def _delay(self, attempt: int) -> float:
        s = self.settings
        return retry_delay(attempt, s.retry_backoff, s.retry_backoff_cap)

    def _params(self, volume: VolumeRef, policy_name: str, key: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "volumeid": volume.id,
            "tags": [{"key": TAG_POLICY, "value": policy_name}, {"key": TAG_KEY, "value": key}],
        }
        if volume.project_id:
            params["projectid"] = volume.project_id
        return params

    async def _create(
        self, policy: SnapshotPolicy, volume: VolumeRef, key: str, record: _Record
    ) -> dict[str, Any]:
        params = self._params(volume, record.due.policy, key)
        targets = [self.zones.id_of(z) for z in policy.copy_to]
        if self.settings.copy_mode == "zoneids" and targets:
            params["zoneids"] = ",".join(targets)
        token = await self.lease.fence()
        if self.settings.copy_mode == "zoneids" or not targets:
            # Not waiting for the job: one call per snapshot (the retention sweep and the
            # replication service read the outcome from listSnapshots).
            answer = await self.client.call("createSnapshot", **params)
            return {"snapshot": answer.get("id"), "jobid": answer.get("jobid"), "lease": token}
        job = (await self.client.job("createSnapshot", **params)).raise_for_status()
        snapshot = job.resource_id or (job.payload or {}).get("id")
        copy: dict[str, Any] = {"id": snapshot, "destzoneids": ",".join(targets)}
        if volume.project_id:
            copy["projectid"] = volume.project_id
        await self.lease.fence()
        copied = await self.client.job("copySnapshot", **copy)
        error = copied.error.errortext if copied.error else None
        return {"snapshot": snapshot, "jobid": job.jobid, "lease": token, "copy_error": error}

    async def _find(self, volume: VolumeRef, key: str) -> dict[str, Any] | None:
        params: dict[str, Any] = {"listall": "true", "tags": [{"key": TAG_KEY, "value": key}]}
        if volume.project_id:
            params["projectid"] = volume.project_id
        rows = await self.client.list("listSnapshots", **params)
        live = [r for r in rows if r.get("state") not in ("Error", "Destroyed")]
        return {"snapshot": live[0]["id"], "reconciled": True} if live else None


class _Record:
    """The audit records and alerts of one attempt, with its evidence."""

    def __init__(
        self, owner: Attempts, due: Due, volume: VolumeRef, key: str, version: int
    ) -> None:
        self.owner, self.due, self.volume, self.key, self.version = owner, due, volume, key, version
        self.attempts = 0

    def evidence(self) -> dict[str, Any]:
        ctx = self.owner.ctx
        return {
            "volume_id": self.volume.id,
            "volume_name": self.volume.name,
            "zone": self.volume.zone_name or self.volume.zone_id,
            "project": self.volume.project,
            "window": self.due.window.key,
            "window_end": self.due.window.end.isoformat(),
            "due": self.due.at.isoformat(),
            "at": ctx.clock.now().isoformat(),
            "attempts": self.attempts,
            "key": self.key,
        }

    async def audit(
        self, decision: str, reason: str, outcome: Any, result: dict[str, Any] | None = None
    ) -> None:
        await self.owner.ctx.auditor.emit(
            action_key=f"{self.key}:{decision}",
            decision=f"snapshot-{decision}",
            reason=reason,
            policy=self.due.policy,
            policy_version=self.version,
            action="createSnapshot",
            outcome=outcome,
            result=result,
            evidence=self.evidence(),
        )

    async def requested(self, outcome: Any, source: str) -> None:
        result = outcome if isinstance(outcome, dict) else {"outcome": outcome}
        why = {"call": "due in its window", "recorded": "already requested (ledger)"}
        reason = why.get(source, "found by its csfabric:key tag after a lost answer")
        await self.audit("requested", reason, "success", {**result, "source": source})

    async def missed(self, reason: str) -> None:
        log.warning(
            "snapshot of %s missed window %s: %s", self.volume.name, self.due.window.key, reason
        )
        await self.audit("missed", f"window ended without a snapshot: {reason}", "failure")

    async def skip(self, code: int | None, reason: str) -> None:
        await self.audit("skipped", reason, "skipped", {"errorcode": code})
        payload = {
            "policy": self.due.policy,
            "volume": self.volume.id,
            "volume_name": self.volume.name,
            "code": code,
            "reason": reason,
            "window": self.due.window.key,
        }
        await self.owner.ctx.bus.publish(
            ALERT_SKIPPED, json.dumps(payload).encode(), msg_id=f"{self.key}:skipped"
        )


__all__ = ["ALERT_SKIPPED", "Attempts"]
