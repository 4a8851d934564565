"""``copySnapshot`` for a snapshot missing in a DR zone: once, through the action ledger.

Key (``replication``, ``copy``, policy, snapshot, zone): a redelivered sweep or a new lease
holder never sends the same copy twice, and an unknown outcome (a lost answer, a timed-out
job) is reconciled by listing the snapshot in the zone.  A failure is audited with the
error and what happens next: a transient one is retried after a backoff (doubled each time,
capped, at most ``max_attempts``), a permanent one (431 …) is not.  A copy the ledger
already recorded as done whose copy has vanished since is not repeated blindly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from csfabric.cloudstack import CloudStackClient
from csfabric.dr import KIND
from csfabric.kernel import (
    ActionLedger,
    LeaseLost,
    PermanentError,
    RetryLater,
    TransientError,
    action_key,
)
from csfabric.kernel.policy import StoredPolicy
from csfabric.kernel.service import ServiceContext
from csfabric.replication.logic import Attempt, CopyTask, retry_delay
from csfabric.replication.reader import PolicyView
from csfabric.replication.settings import SERVICE, ReplicationSettings


class Copier:
    def __init__(
        self,
        ctx: ServiceContext,
        settings: ReplicationSettings,
        client: CloudStackClient,
        ledger: ActionLedger,
        fence: Callable[[], Awaitable[None]],
    ) -> None:
        self.ctx, self.settings, self.client = ctx, settings, client
        self.ledger, self.fence = ledger, fence
        self.attempts: dict[tuple[str, str], Attempt] = {}  # (snapshot, zone) → tries
        self.last_error: dict[str, str] = {}  # volume id → its last copy error

    def forget(self, live: set[tuple[str, str]]) -> None:
        """Keep attempts only of (snapshot, zone) pairs CloudStack still lists."""
        self.attempts = {k: v for k, v in self.attempts.items() if k in live}

    async def copy(self, stored: StoredPolicy, view: PolicyView, task: CopyTask) -> bool:
        """Copy ``task``'s snapshot to its zone (once, through the ledger); True when done."""
        name, zone = stored.name, next(z for z in view.dr_zones if z.id == task.zone_id)
        evidence = {
            "snapshot": task.snapshot_id,
            "volume": task.volume_id,
            "zone": zone.name,
            "created": task.created.isoformat(),
            "attempt": task.attempt,
        }
        decision = await self.ctx.gate.check(KIND, name)
        if not decision.allowed:
            self.attempts[(task.snapshot_id, task.zone_id)] = Attempt(
                task.attempt - 1, self.ctx.clock.now() + self.settings.backoff, decision.reason
            )
            await self.ctx.auditor.emit(
                action_key=action_key(SERVICE, "copy-gated", name, task.snapshot_id, zone.id),
                decision="copy",
                reason=f"copySnapshot not sent: {decision.reason}",
                policy=name,
                policy_version=stored.version,
                action="copySnapshot",
                outcome=decision.audit_outcome,
                evidence=evidence,
            )
            return False
        key = action_key(SERVICE, "copy", name, task.snapshot_id, task.zone_id)

        async def call() -> dict[str, object]:
            await self.fence()
            job = await self.client.job("copySnapshot", id=task.snapshot_id, destzoneids=zone.id)
            job.raise_for_status()
            return {"jobid": job.jobid, "status": job.status}

        async def reconcile() -> dict[str, object] | None:
            rows = await self.client.list(
                "listSnapshots", id=task.snapshot_id, zoneid=zone.id, listall="true"
            )
            return {"reconciled": "copy found in the zone"} if rows else None

        try:
            result = await self.ledger.run(key, call, reconcile=reconcile)
        except LeaseLost:
            raise
        except RetryLater:
            return False  # an earlier attempt is still being settled: look again next sweep
        except (PermanentError, TransientError) as error:
            await self._failed(stored, task, zone.name, error, evidence)
            return False
        if not result.executed and result.source == "recorded":
            # Copied once already, and the copy is gone since: not repeated blindly.
            why = "copied before; that copy has since been removed from the zone"
            self.attempts[(task.snapshot_id, task.zone_id)] = Attempt(
                self.settings.max_attempts, self.ctx.clock.now(), why
            )
            self.last_error[task.volume_id] = why
            return False
        self.attempts.pop((task.snapshot_id, task.zone_id), None)
        self.last_error.pop(task.volume_id, None)
        await self.ctx.auditor.emit(
            action_key=action_key(SERVICE, "copied", key),
            decision="copied",
            reason=f"snapshot {task.snapshot_id} was not in {zone.name}"
            f" {self.settings.copy_grace:g}s after it was created: copied",
            policy=name,
            policy_version=stored.version,
            action="copySnapshot",
            result=result.outcome if isinstance(result.outcome, dict) else None,
            evidence=evidence,
        )
        return True

    async def _failed(
        self,
        stored: StoredPolicy,
        task: CopyTask,
        zone: str,
        error: Exception,
        evidence: dict[str, object],
    ) -> None:
        s, now = self.settings, self.ctx.clock.now()
        permanent = isinstance(error, PermanentError)
        count = s.max_attempts if permanent else task.attempt
        delay = retry_delay(task.attempt, s.backoff, s.backoff_cap)
        text = str(error)
        self.attempts[(task.snapshot_id, task.zone_id)] = Attempt(count, now + delay, text)
        self.last_error[task.volume_id] = text
        if count >= s.max_attempts:
            plan = "not retried" if permanent else f"given up after {count} attempts"
        else:
            plan = f"retried in {delay.total_seconds():g}s"
        await self.ctx.auditor.emit(
            action_key=action_key(
                SERVICE, "copy-failed", stored.name, task.snapshot_id, zone, str(task.attempt)
            ),
            decision="copy-failed",
            reason=f"copySnapshot of {task.snapshot_id} to {zone} failed ({plan}): {text}",
            policy=stored.name,
            policy_version=stored.version,
            action="copySnapshot",
            outcome="failure",
            evidence=evidence | {"error": text, "permanent": permanent},
        )


__all__ = ["Copier"]
