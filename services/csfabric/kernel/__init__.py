"""The kernel: the shared runtime every service stands on.  Start reading here.

The room: what every service needs and none should write again — errors (one tree,
:mod:`csfabric.kernel.errors`), settings, the clock (real, scaled, stepped), durations,
logs (with secret redaction), tracing, metrics and the ops port, the CloudEvents envelope,
audit records, control commands, heartbeats, leader leases with fencing tokens, and the
action ledger that keeps an action from reaching CloudStack twice.  Four rooms have their
own doors beside this one: ``csfabric.kernel.bus`` (NATS connection, consumers, DLQ,
streams), ``csfabric.kernel.policy`` (policy documents, store, watch, gate),
``csfabric.kernel.service`` (the service registry and runtime) and
``csfabric.kernel.kafka`` (the Kafka bridge).

It must not know any service, nor CloudStack, nor the CLI: the kernel imports nothing of
ours (the layers contract in ``pyproject.toml``), and finds services through entry points.

This module is the door: code outside the kernel imports these names from
``csfabric.kernel``, never from a ``_private`` module behind it (import-linter's
"Door: the kernel's foundations" contract).  ``docs/architecture.md`` draws the whole tree.
"""

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
from csfabric.kernel._idempotency import ActionLedger, ActionResult, action_key, open_ledger
from csfabric.kernel._leases import BUCKET as LEASE_BUCKET
from csfabric.kernel._leases import Lease
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
    ActionRefused,
    ConfigError,
    CsfabricError,
    EnvelopeError,
    LeaseLost,
    OutcomeUnknownError,
    PermanentError,
    RetryLater,
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
    "RetryLater",
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
