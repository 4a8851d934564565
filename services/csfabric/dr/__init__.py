"""Disaster recovery, the shared part: the ``SnapshotPolicy`` kind and its pure rules.

The room: the policy model both DR services read (``snapshots`` makes and retires the
snapshots, ``replication`` confirms the DR copies and watches the RPO) and ``csfabric dr``
reports on; the windows snapshots are due in (aligned to a time zone's clock, DST-safe);
retention (which of its own snapshots a policy may delete, per zone); the achieved and the
worst-case RPO.  Everything here is pure: no broker, no HTTP, no clock (``now`` is given).

It must not know any service, the CLI, the bus or CloudStack's client: services stand on
it, not the other way round (it sits between the services and ``cloudstack`` in the layers
contract, so both DR services share it without importing each other).

This module is the door: import these names from ``csfabric.dr``.
"""

from csfabric.dr._evidence import (
    ALERT_BREACH,
    ALERT_RECOVERED,
    DECISION_BREACH,
    DECISION_DRILL,
    DECISION_EVIDENCE,
    DECISION_RECOVERED,
    DrillResult,
    DrillStep,
    RpoBreach,
    RpoEvidence,
    RpoSample,
)
from csfabric.dr._plan import DR_NETWORK_TAG, covers_zone, dr_name, plan
from csfabric.dr._plan_rows import (
    Blocked,
    Inventory,
    Network,
    Offering,
    PlanVm,
    RecoveryPlan,
    RedeployVm,
    RestoreVolume,
    SnapshotVolume,
    Template,
)
from csfabric.dr._policy import KIND, Retain, Selector, SnapshotPolicy, VolumeRef
from csfabric.dr._rules import (
    BACKED_UP,
    IN_FLIGHT,
    STORE_READY,
    Copy,
    achieved_rpo,
    newest_complete,
    p95,
    to_retire,
    worst_case_rpo,
)
from csfabric.dr._windows import Window, boundaries, offset_in_window, window_at, windows_between

__all__ = [
    "ALERT_BREACH",
    "ALERT_RECOVERED",
    "BACKED_UP",
    "DECISION_BREACH",
    "DECISION_DRILL",
    "DECISION_EVIDENCE",
    "DECISION_RECOVERED",
    "DR_NETWORK_TAG",
    "IN_FLIGHT",
    "KIND",
    "STORE_READY",
    "Blocked",
    "Copy",
    "DrillResult",
    "DrillStep",
    "Inventory",
    "Network",
    "Offering",
    "PlanVm",
    "RecoveryPlan",
    "RedeployVm",
    "RestoreVolume",
    "Retain",
    "RpoBreach",
    "RpoEvidence",
    "RpoSample",
    "Selector",
    "SnapshotPolicy",
    "SnapshotVolume",
    "Template",
    "VolumeRef",
    "Window",
    "achieved_rpo",
    "boundaries",
    "covers_zone",
    "dr_name",
    "newest_complete",
    "offset_in_window",
    "p95",
    "plan",
    "to_retire",
    "window_at",
    "windows_between",
    "worst_case_rpo",
]
