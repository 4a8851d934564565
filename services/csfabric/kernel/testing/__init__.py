"""The kernel's test double: an in-memory NATS + JetStream that the real kernel runs on.

``MemoryNats`` models what the kernel asks of nats-server — streams with subjects, limits
and ``DiscardPolicy.NEW`` refusals, the ``Nats-Msg-Id`` dedupe window, durable pull
consumers (ack, nak with delay, ``in_progress``, term, ``ack_wait`` redelivery,
``max_deliver``, ``num_delivered``), KV buckets with revisions, compare-and-set, deletes,
purges, TTL and watches — behind the nats-py calls the kernel makes.  So ``Bus``,
``Consumer``, ``Lease``, ``ActionLedger``, ``Auditor``, ``PolicyStore``/``PolicyWatcher``
and ``Heartbeat`` run unchanged, with no server::

    server = MemoryNats()
    bus = await memory_bus(server, service="mysvc")      # a real Bus, streams created
    ctx = service_context(bus)                            # what a service's setup gets

It is a double, not a server: the shared tests (``tests/shared/``) run the same cases on
it and on a real nats-server, which is what keeps the two alike.  It must not know any
service.  Door: this ``__init__``.
"""

from __future__ import annotations

from csfabric.kernel import (
    Auditor,
    Clock,
    FabricSettings,
    Metrics,
    StreamLimits,
)
from csfabric.kernel._ops import OpsServer
from csfabric.kernel.bus import Bus, ensure_streams
from csfabric.kernel.policy import ActionGate, PolicyWatcher
from csfabric.kernel.service import ServiceContext
from csfabric.kernel.testing._client import MemoryClient, MemoryJetStream
from csfabric.kernel.testing._server import MemoryNats

__all__ = ["MemoryClient", "MemoryJetStream", "MemoryNats", "memory_bus", "service_context"]


async def memory_bus(
    server: MemoryNats | None = None,
    *,
    service: str = "test",
    clock: Clock | None = None,
    metrics: Metrics | None = None,
    create_streams: bool = True,
    stream_limits: StreamLimits | None = None,
) -> Bus:
    """A real :class:`Bus` on ``server`` (a new one by default), like ``Bus.connect``.

    Several buses on one server are several processes on one nats-server: they share
    streams, durable consumers and buckets.
    """
    server = server or MemoryNats()
    client = server.client(f"csfabric-{service}")
    bus = Bus(client.as_client(), service=service, clock=clock, metrics=metrics)
    if create_streams:
        await ensure_streams(bus.js, stream_limits)
    return bus


def service_context(
    bus: Bus, name: str | None = None, settings: FabricSettings | None = None
) -> ServiceContext:
    """What ``run_service`` hands a service's ``setup``, on ``bus``: no ops port is opened
    and the policy watcher is not started (``await ctx.policies.start()`` to follow the
    policy store)."""
    metrics = bus.metrics or Metrics(name or bus.service)
    policies = PolicyWatcher(bus)
    return ServiceContext(
        name or bus.service,
        settings or FabricSettings(),
        bus.clock,
        bus,
        metrics,
        Auditor(bus),
        OpsServer(metrics),
        policies,
        ActionGate(policies),
    )
