"""CloudStack: the API client, typed API objects, native event models, the simulator.

Like ``events``, this package may import ``csfabric.kernel`` and nothing else of ours.
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
