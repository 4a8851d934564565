"""The shared runtime every service uses; it knows no service."""

from .audit import Auditor, AuditRecord
from .bus import Bus
from .clock import Clock, RealClock, ScaledClock, SteppedClock, parse_clock
from .consumer import Consumer, ConsumerOptions, Delivery
from .dlq import DeadLetter
from .durations import Duration, format_duration, parse_duration
from .envelope import CloudEvent, make_event, parse_event, subject_for
from .errors import ConfigError, CsfabricError, EnvelopeError, PermanentError, TransientError
from .gate import ActionGate, GateDecision
from .idempotency import (
    ActionLedger,
    ActionRefused,
    ActionResult,
    OutcomeUnknownError,
    action_key,
    open_ledger,
)
from .leases import Lease, LeaseLost
from .policies import BlastRadius, PolicyBase, PolicyDocument, Scope, register_kind
from .policyload import PolicyLoadError, load_policies
from .policystore import PolicyStore
from .policywatch import PolicyWatcher
from .settings import FabricSettings, StreamLimits
from .streams import STREAMS, ensure_streams

__all__ = [
    "STREAMS",
    "ActionGate",
    "ActionLedger",
    "ActionRefused",
    "ActionResult",
    "AuditRecord",
    "Auditor",
    "BlastRadius",
    "Bus",
    "Clock",
    "CloudEvent",
    "ConfigError",
    "Consumer",
    "ConsumerOptions",
    "CsfabricError",
    "DeadLetter",
    "Delivery",
    "Duration",
    "EnvelopeError",
    "FabricSettings",
    "GateDecision",
    "Lease",
    "LeaseLost",
    "OutcomeUnknownError",
    "PermanentError",
    "PolicyBase",
    "PolicyDocument",
    "PolicyLoadError",
    "PolicyStore",
    "PolicyWatcher",
    "RealClock",
    "ScaledClock",
    "Scope",
    "SteppedClock",
    "StreamLimits",
    "TransientError",
    "action_key",
    "ensure_streams",
    "format_duration",
    "load_policies",
    "make_event",
    "open_ledger",
    "parse_clock",
    "parse_duration",
    "parse_event",
    "register_kind",
    "subject_for",
]
