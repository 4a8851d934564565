"""CloudStack: the API client, typed API objects, native event models, the simulator.

Like ``events``, this package may import ``csfabric.kernel`` and nothing else of ours.
"""

from ._transport import (
    CloudStackApiError,
    CloudStackJobTimeout,
    CloudStackOutcomeUnknown,
    CloudStackTransientError,
    EndpointGate,
)
from .client import CloudStackClient
from .models import (
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
from .settings import CloudStackSettings

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
    "Project",
    "Snapshot",
    "Tag",
    "VirtualMachine",
    "Volume",
    "Zone",
]
