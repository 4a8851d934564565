"""An API-faithful CloudStack simulator: ``/client/api`` with CloudStack's shapes and errors.

The room: :class:`Simulator` (aiohttp app, ``dispatch`` as in-process transport),
:class:`World` (deterministic from a seed; ``World.demo(seed)`` for the demo world), the
simulated commands (``commands/``, one module per resource family), async jobs, fault
injection, and the event feeds it emits the way CloudStack does (webhook, RabbitMQ, Kafka).

It must not know the fabric's services, its bus or the client it is tested with: it
imitates CloudStack from the outside, so the client cannot lean on anything but the wire.

This module is the door: import these names from ``csfabric.cloudstack.simulator``,
never from its ``_private`` modules.  :class:`ApiError` is CloudStack's error answer,
outside the fabric's error tree (see :mod:`csfabric.kernel.errors`).
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
from csfabric.cloudstack.simulator._inprocess import InProcessSession, in_process_session
from csfabric.cloudstack.simulator._server import Simulator
from csfabric.cloudstack.simulator._signing import canonical, signature
from csfabric.cloudstack.simulator._world import World
from csfabric.kernel import SIMULATOR_KEYS_FILE as KEYS_FILE

__all__ = [
    "KEYS_FILE",
    "ApiError",
    "EventSink",
    "Fanout",
    "FaultPlan",
    "InProcessSession",
    "KafkaSink",
    "RabbitSink",
    "Simulator",
    "WebhookSink",
    "World",
    "canonical",
    "in_process_session",
    "merge_specs",
    "parse_fault",
    "parse_latency",
    "parse_throttle",
    "signature",
]
