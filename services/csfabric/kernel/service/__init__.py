"""Services: which ones exist (the ``csfabric.services`` entry points) and how one runs.

The room: the registry that finds services without importing them, and the runtime —
:class:`ServiceContext` (settings, logs, traces, bus, ops port) and :func:`run_service`,
which runs a service's ``setup(ctx)`` and stops everything cleanly on SIGTERM.

It must not know any particular service (they are found by entry point, imported only to
be run); it is the kernel's top layer, so no other kernel part imports it.

This module is the door: import these names from ``csfabric.kernel.service``, never from
its ``_private`` modules (import-linter's "Door: csfabric.kernel.service").
"""

from csfabric.kernel.service._registry import SERVICES_GROUP, available
from csfabric.kernel.service._runtime import ServiceContext, run_service

__all__ = [
    "SERVICES_GROUP",
    "ServiceContext",
    "available",
    "run_service",
]
