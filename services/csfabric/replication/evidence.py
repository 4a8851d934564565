"""At each window boundary: a policy's RPO evidence, and its breaches raised or cleared.

The evidence is one ``rpo-evidence`` audit record per policy (:class:`~csfabric.dr.RpoEvidence`:
every volume's newest snapshot here and in the DR zone, its achieved RPO, breach or not).
A volume going over its RPO publishes :class:`~csfabric.dr.RpoBreach` on
``csfabric.alert.replication.rpo-breach`` once, and on ``…rpo-recovered`` when it is back
under; both are audit records too.  Open breaches live in KV (``breaches.<policy>``), and
an alert's message id is (decision, policy, volume, since), so a restarted or newly
elected replica neither sends an alert twice nor forgets a recovery.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from csfabric.dr import (
    ALERT_BREACH,
    ALERT_RECOVERED,
    DECISION_BREACH,
    DECISION_EVIDENCE,
    DECISION_RECOVERED,
    RpoBreach,
    RpoEvidence,
    SnapshotPolicy,
)
from csfabric.kernel import action_key, format_duration
from csfabric.kernel.policy import StoredPolicy
from csfabric.kernel.service import ServiceContext
from csfabric.replication.logic import Transition, cause, samples, transitions
from csfabric.replication.reader import PolicyView
from csfabric.replication.settings import SERVICE
from csfabric.replication.state import DrState


def _seconds(value: float | None) -> str:
    return "none" if value is None else f"{value:g}s"


class EvidenceWriter:
    def __init__(
        self,
        ctx: ServiceContext,
        state: DrState,
        fence: Callable[[], Awaitable[None]],
        *,
        chunk: int = 2000,
    ) -> None:
        self.ctx, self.state, self.fence, self.chunk = ctx, state, fence, chunk

    async def evaluate(
        self,
        stored: StoredPolicy,
        spec: SnapshotPolicy,
        view: PolicyView,
        at: datetime,
        last_error: Mapping[str, str],
    ) -> RpoEvidence:
        """The policy's evidence at boundary ``at`` (snapshots made after it do not count)."""
        name = stored.name
        local = [c for c in view.local if c.created <= at]
        measured = [c for c in view.measured if c.created <= at]
        found = samples(at, view.volumes, local, measured, spec.rpo)
        zone = view.measured_in.name
        evidence = RpoEvidence(
            policy=name,
            policy_version=stored.version,
            at=at,
            rpo_s=spec.rpo.total_seconds(),
            dr_zone=zone,
            volumes=found,
        )
        await self.fence()
        # A record must fit NATS's 1 MiB payload (~200 bytes a volume): a large policy's
        # evidence is several records for the same (policy, at), each a whole RpoEvidence
        # over its share of the volumes (readers merge them; the reason says "part i of n").
        size = self.chunk
        parts = [found[i : i + size] for i in range(0, len(found), size)] or [[]]
        for index, part in enumerate(parts):
            piece = evidence.model_copy(update={"volumes": part})
            label = "" if len(parts) == 1 else f" (part {index + 1} of {len(parts)})"
            await self.ctx.auditor.emit(
                action_key=action_key(SERVICE, DECISION_EVIDENCE, name, at.isoformat(), str(index)),
                decision=DECISION_EVIDENCE,
                reason=f"{len(part)} volume(s){label}, {piece.in_breach} over the RPO of"
                f" {_seconds(piece.rpo_s)}, worst achieved {_seconds(piece.worst_rpo_s)}"
                f" in {zone}",
                policy=name,
                policy_version=stored.version,
                evidence=piece.model_dump(mode="json"),
            )
        before = await self.state.breaches(name)
        causes = {
            s.volume_id: cause(s, zone, last_error.get(s.volume_id)) for s in found if s.breach
        }
        created = {v.ref.id: v.since for v in view.volumes}
        after, changes = transitions(before, found, created, spec.rpo, at, causes)
        for change in changes:
            await self._alert(stored, spec, change)
        if after != before:
            await self.fence()
            await self.state.save_breaches(name, after)
        return evidence

    async def _alert(self, stored: StoredPolicy, spec: SnapshotPolicy, t: Transition) -> None:
        payload = RpoBreach(
            policy=stored.name,
            volume_id=t.volume_id,
            volume_name=t.volume_name,
            rpo_s=spec.rpo.total_seconds(),
            achieved_rpo_s=t.achieved_rpo_s,
            since=t.since,
            ended=t.ended,
            cause=t.cause,
        )
        breach = t.kind == "breach"
        subject, decision = (
            (ALERT_BREACH, DECISION_BREACH) if breach else (ALERT_RECOVERED, DECISION_RECOVERED)
        )
        ident = f"{decision}:{stored.name}:{t.volume_id}:{t.since.isoformat()}"
        await self.fence()
        await self.ctx.bus.publish(subject, payload.model_dump_json().encode(), msg_id=ident)
        volume = t.volume_name or t.volume_id
        if breach:
            reason = f"volume {volume} over its RPO since {t.since.isoformat()}: {t.cause}"
        else:
            lasted = format_duration(max((t.ended or t.since) - t.since, timedelta(0)))
            reason = f"volume {volume} back within its RPO after {lasted} over it"
        await self.ctx.auditor.emit(
            action_key=action_key(SERVICE, ident),
            decision=decision,
            reason=reason,
            policy=stored.name,
            policy_version=stored.version,
            evidence=payload.model_dump(mode="json"),
        )


__all__ = ["EvidenceWriter"]
