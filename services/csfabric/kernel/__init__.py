"""The shared runtime every service uses; it knows no service."""

from .audit import Auditor, AuditRecord
from .bus import Bus
from .clock import Clock, RealClock, ScaledClock, SteppedClock, parse_clock
from .consumer import Consumer, ConsumerOptions, Delivery
from .dlq import DeadLetter
from .envelope import CloudEvent, make_event, parse_event, subject_for
from .errors import ConfigError, CsfabricError, EnvelopeError, PermanentError, TransientError
from .idempotency import ActionLedger, ActionResult, action_key
from .leases import Lease
from .settings import FabricSettings, StreamLimits
from .streams import STREAMS, ensure_streams

__all__ = [
    "STREAMS",
    "ActionLedger",
    "ActionResult",
    "AuditRecord",
    "Auditor",
    "Bus",
    "Clock",
    "CloudEvent",
    "ConfigError",
    "Consumer",
    "ConsumerOptions",
    "CsfabricError",
    "DeadLetter",
    "Delivery",
    "EnvelopeError",
    "FabricSettings",
    "Lease",
    "PermanentError",
    "RealClock",
    "ScaledClock",
    "SteppedClock",
    "StreamLimits",
    "TransientError",
    "action_key",
    "ensure_streams",
    "make_event",
    "parse_clock",
    "parse_event",
    "subject_for",
]
