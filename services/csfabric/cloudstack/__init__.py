"""CloudStack: the API client, typed API objects, native event parsing, the simulator.

The room: everything that knows CloudStack — :class:`CloudStackClient` (own v3 signing with
``cs``'s encoding, retries by error class, spans and metrics, an injectable session), the
typed objects it returns, :func:`parse_native` (CloudStack's native event messages from any
feed → CloudEvents, shared by ingest and any future gateway), and, behind its own door,
``csfabric.cloudstack.simulator``.

It must not know any service, the CLI or ``csfabric dev``: it may import ``csfabric.events``
(its parsers build those payloads and name their ``dataschema``) and ``csfabric.kernel``,
nothing else of ours (the layers contract).

This module is the door: import these names from ``csfabric.cloudstack``, never from its
``_private`` modules (import-linter's "Door: csfabric.cloudstack").  Its errors are in
:mod:`csfabric.cloudstack.errors`, drawn in the tree in :mod:`csfabric.kernel.errors`.
"""

from csfabric.cloudstack._client import CloudStackClient
from csfabric.cloudstack._models import (
    CloudStackObject,
    Event,
    JobError,
    JobResult,
    Project,
    Snapshot,
    Tag,
    VirtualMachine,
    Volume,
    Zone,
)
from csfabric.cloudstack._parse import NativeMessage, parse_list_events_row, parse_native
from csfabric.cloudstack._settings import CloudStackSettings
from csfabric.cloudstack._transport import EndpointGate
from csfabric.cloudstack.errors import (
    CloudStackApiError,
    CloudStackJobTimeout,
    CloudStackOutcomeUnknown,
    CloudStackTransientError,
)

__all__ = [
    "CloudStackApiError",
    "CloudStackClient",
    "CloudStackJobTimeout",
    "CloudStackObject",
    "CloudStackOutcomeUnknown",
    "CloudStackSettings",
    "CloudStackTransientError",
    "EndpointGate",
    "Event",
    "JobError",
    "JobResult",
    "NativeMessage",
    "Project",
    "Snapshot",
    "Tag",
    "VirtualMachine",
    "Volume",
    "Zone",
    "parse_list_events_row",
    "parse_native",
]
