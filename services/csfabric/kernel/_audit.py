"""Every decision becomes an audit record on ``csfabric.audit.<service>``.

That includes "matched, did nothing, because …".  A record's id is a hash of its action
key, so a redelivered event produces the same record and the stream's duplicate window
stores it once.  The trace id of the current span is added, so an auditor can follow one
trace from the CloudStack event through the decision to the API call.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from csfabric.kernel._logs import clip
from csfabric.kernel._tracing import current_trace_id
from csfabric.kernel.bus import Bus

Outcome = Literal["success", "failure", "skipped", "dry-run", "pending"]


class AuditRecord(BaseModel):
    """One decision or action, as the recorder stores it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="sha256 of the action key")
    time: datetime
    service: str
    decision: str = Field(description="what was decided, e.g. 'snapshot' or 'no-action'")
    reason: str = Field(description="why — always filled, also when nothing was done")
    input_event_ids: list[str] = Field(default_factory=list)
    policy: str | None = None
    policy_version: int | None = None
    trace_id: str | None = None
    action: str | None = Field(None, description="the external call made, e.g. createSnapshot")
    outcome: Outcome = "success"
    result: dict[str, Any] | None = Field(None, description="e.g. the CloudStack job result")
    evidence: dict[str, Any] | None = Field(None, description="what the decision was based on")
    operator: str | None = Field(None, description="who issued a control command")


def audit_id(action_key: str) -> str:
    return hashlib.sha256(action_key.encode()).hexdigest()


def audit_subject(service: str) -> str:
    return f"csfabric.audit.{service}"


class Auditor:
    """A service's one way to emit audit records."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def emit(
        self,
        *,
        action_key: str,
        decision: str,
        reason: str,
        input_event_ids: list[str] | None = None,
        policy: str | None = None,
        policy_version: int | None = None,
        action: str | None = None,
        outcome: Outcome = "success",
        result: dict[str, Any] | None = None,
        evidence: dict[str, Any] | None = None,
        operator: str | None = None,
    ) -> AuditRecord:
        record = AuditRecord(
            id=audit_id(action_key),
            time=self.bus.clock.now(),
            service=self.bus.service,
            decision=decision,
            reason=clip(reason, 2000),
            input_event_ids=input_event_ids or [],
            policy=policy,
            policy_version=policy_version,
            trace_id=current_trace_id(),
            action=action,
            outcome=outcome,
            result=result,
            evidence=evidence,
            operator=operator,
        )
        await self.bus.publish(
            audit_subject(self.bus.service),
            record.model_dump_json(exclude_none=True).encode(),
            msg_id=record.id,
        )
        if self.bus.metrics is not None:
            self.bus.metrics.decision(outcome)
        return record


__all__ = ["AuditRecord", "Auditor", "Outcome", "audit_id", "audit_subject"]
