"""What the DR services prove, as data: RPO evidence, breaches, drill results.

These are the payloads the ``replication`` service emits (audit evidence at each window
boundary, alerts on ``csfabric.alert.replication.rpo-breach`` / ``…rpo-recovered``) and
``csfabric dr drill`` records; ``csfabric dr status`` and ``csfabric dr report`` read them.
They live here, below both services and the CLI, so writer and readers share one shape.
Durations are seconds (JSON numbers) so a report needs no duration parser.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

ALERT_BREACH = "csfabric.alert.replication.rpo-breach"
ALERT_RECOVERED = "csfabric.alert.replication.rpo-recovered"
# Audit decisions of the replication service and of ``csfabric dr drill``.
DECISION_EVIDENCE = "rpo-evidence"
DECISION_BREACH = "rpo-breach"
DECISION_RECOVERED = "rpo-recovered"
DECISION_DRILL = "dr-drill"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RpoSample(_Record):
    """One volume at one instant: its newest snapshot here and in the DR zone."""

    volume_id: str
    volume_name: str
    newest_local: datetime | None = Field(None, description="newest BackedUp in its own zone")
    newest_dr: datetime | None = Field(None, description="newest complete copy in the DR zone")
    achieved_rpo_s: float | None = Field(
        None, description="seconds of data lost if the primary zone vanished now; None: no copy"
    )
    breach: bool


class RpoEvidence(_Record):
    """A policy's volumes at a window boundary: the evidence an auditor asks for."""

    policy: str
    policy_version: int | None = None
    at: datetime
    rpo_s: float
    dr_zone: str
    volumes: list[RpoSample]

    @property
    def in_breach(self) -> int:
        return sum(sample.breach for sample in self.volumes)

    @property
    def worst_rpo_s(self) -> float | None:
        known = [s.achieved_rpo_s for s in self.volumes if s.achieved_rpo_s is not None]
        return max(known, default=None)


class RpoBreach(_Record):
    """An alert's payload: a volume's achieved RPO went over (or came back under) its RPO."""

    policy: str
    volume_id: str
    volume_name: str
    rpo_s: float
    achieved_rpo_s: float | None
    since: datetime = Field(description="when the achieved RPO first exceeded the RPO")
    ended: datetime | None = Field(None, description="set on the recovery alert")
    cause: str = Field(description="why, as far as the fabric knows (last miss or copy error)")


class DrillStep(_Record):
    name: str
    started: datetime
    finished: datetime
    ok: bool
    detail: str = ""


class DrillResult(_Record):
    """``csfabric dr drill``: the plan run against a cloud, timed, then cleaned up."""

    id: str
    zone: str
    started: datetime
    finished: datetime
    target_rto_s: float
    measured_rto_s: float
    volumes_restored: int
    vms_redeployed: int
    ok: bool
    cleaned_up: bool
    steps: list[DrillStep] = Field(default_factory=list)


__all__ = [
    "ALERT_BREACH",
    "ALERT_RECOVERED",
    "DECISION_BREACH",
    "DECISION_DRILL",
    "DECISION_EVIDENCE",
    "DECISION_RECOVERED",
    "DrillResult",
    "DrillStep",
    "RpoBreach",
    "RpoEvidence",
    "RpoSample",
]
