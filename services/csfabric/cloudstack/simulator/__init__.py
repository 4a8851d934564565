"""An API-faithful CloudStack simulator: ``/client/api`` with CloudStack's shapes and errors.

Public surface: :class:`Simulator` (aiohttp app, ``dispatch`` as in-process transport),
:class:`World` (deterministic from a seed; ``World.demo(seed)`` for the demo world),
:class:`ApiError`, and the request-signing helpers.
"""

from csfabric.cloudstack.simulator._errors import ApiError
from csfabric.cloudstack.simulator._faults import (
    FaultPlan,
    merge_specs,
    parse_fault,
    parse_latency,
    parse_throttle,
)
from csfabric.cloudstack.simulator._feeds import (
    EventSink,
    Fanout,
    KafkaSink,
    RabbitSink,
    WebhookSink,
)
from csfabric.cloudstack.simulator._server import KEYS_FILE, Simulator
from csfabric.cloudstack.simulator._signing import canonical, signature, verify_request
from csfabric.cloudstack.simulator._world import World

__all__ = [
    "KEYS_FILE",
    "ApiError",
    "EventSink",
    "Fanout",
    "FaultPlan",
    "KafkaSink",
    "RabbitSink",
    "Simulator",
    "WebhookSink",
    "World",
    "canonical",
    "merge_specs",
    "parse_fault",
    "parse_latency",
    "parse_throttle",
    "signature",
    "verify_request",
]
