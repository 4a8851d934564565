"""The backbone a test runs on: the in-memory double or a real nats-server.

:class:`Backbone` hands out buses on one of them; the ``backbone`` fixture
(``tests/conftest.py``) runs a test once on each.  A case that passes on one side and fails
on the other is a fidelity bug of the double (``csfabric.kernel.testing``).
"""

from __future__ import annotations

from typing import Any

from csfabric.kernel import Clock, Metrics
from csfabric.kernel.bus import Bus
from csfabric.kernel.testing import MemoryNats, memory_bus


class Backbone:
    """Hands out buses on one backbone (one server): several buses are several processes."""

    def __init__(self, kind: str, url: str | None = None) -> None:
        self.kind = kind
        self.url = url
        self.server = MemoryNats() if kind == "memory" else None
        self._buses: list[Bus] = []

    async def bus(
        self,
        service: str = "test",
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        bus_class: type[Bus] = Bus,
        **options: Any,
    ) -> Bus:
        if self.server is not None:
            bus = await memory_bus(
                self.server, service=service, clock=clock, metrics=metrics, **options
            )
            if bus_class is not Bus:
                bus = bus_class(bus.nc, service=service, clock=clock, metrics=metrics)
        else:
            bus = await bus_class.connect(
                self.url, service=service, clock=clock, metrics=metrics, **options
            )
        self._buses.append(bus)
        return bus

    async def close(self) -> None:
        for bus in self._buses:
            await bus.close()


async def no_network(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("an in-memory test tried to connect to a NATS server")


__all__ = ["Backbone", "no_network"]
