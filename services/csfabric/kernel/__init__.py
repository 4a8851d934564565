"""The shared runtime every service uses; it knows no service."""

from csfabric.kernel._audit import Auditor, AuditRecord
from csfabric.kernel._clock import (
    Clock,
    RealClock,
    ScaledClock,
    SteppedClock,
    parse_clock,
    scaled_spec,
)
from csfabric.kernel._durations import Duration, format_duration, parse_duration
from csfabric.kernel._envelope import (
    DEFAULT_MAX_BYTES,
    CloudEvent,
    make_event,
    parse_event,
    subject_for,
)
from csfabric.kernel._heartbeat import BUCKET as HEARTBEAT_BUCKET
from csfabric.kernel._heartbeat import default_instance
from csfabric.kernel._idempotency import BUCKET as LEDGER_BUCKET
from csfabric.kernel._idempotency import (
    ActionLedger,
    ActionRefused,
    ActionResult,
    OutcomeUnknownError,
    action_key,
    open_ledger,
)
from csfabric.kernel._leases import BUCKET as LEASE_BUCKET
from csfabric.kernel._leases import Lease, LeaseLost
from csfabric.kernel._logs import (
    clip,
    quote,
    redact,
    register_secret,
    resolve_log_format,
    setup_logging,
    wants_colour,
)
from csfabric.kernel._operator import current_operator
from csfabric.kernel._ops import HANDLER_BUCKETS, Metrics
from csfabric.kernel._settings import (
    DEV_FILE,
    CsfabricSettings,
    FabricSettings,
    StreamLimits,
    default_state_dir,
    read_dev_file,
)
from csfabric.kernel._tracing import get_tracer
from csfabric.kernel.errors import (
    ConfigError,
    CsfabricError,
    EnvelopeError,
    PermanentError,
    TransientError,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEV_FILE",
    "HANDLER_BUCKETS",
    "HEARTBEAT_BUCKET",
    "LEASE_BUCKET",
    "LEDGER_BUCKET",
    "ActionLedger",
    "ActionRefused",
    "ActionResult",
    "AuditRecord",
    "Auditor",
    "Clock",
    "CloudEvent",
    "ConfigError",
    "CsfabricError",
    "CsfabricSettings",
    "Duration",
    "EnvelopeError",
    "FabricSettings",
    "Lease",
    "LeaseLost",
    "Metrics",
    "OutcomeUnknownError",
    "PermanentError",
    "RealClock",
    "ScaledClock",
    "SteppedClock",
    "StreamLimits",
    "TransientError",
    "action_key",
    "clip",
    "current_operator",
    "default_instance",
    "default_state_dir",
    "format_duration",
    "get_tracer",
    "make_event",
    "open_ledger",
    "parse_clock",
    "parse_duration",
    "parse_event",
    "quote",
    "read_dev_file",
    "redact",
    "register_secret",
    "resolve_log_format",
    "scaled_spec",
    "setup_logging",
    "subject_for",
    "wants_colour",
]
