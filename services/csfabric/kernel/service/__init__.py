"""TODO: what csfabric.kernel.service is."""

from csfabric.kernel.service._registry import SERVICES_GROUP, available
from csfabric.kernel.service._runtime import ServiceContext, run_service

__all__ = [
    "SERVICES_GROUP",
    "ServiceContext",
    "available",
    "run_service",
]
