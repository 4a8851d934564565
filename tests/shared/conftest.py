"""The ``backbone`` fixture: every test here runs twice, in memory and on nats-server.

``memory`` runs on :class:`csfabric.kernel.testing.MemoryNats` and may not touch the network:
``nats.connect`` is made to fail, so a test that reached for a server would error.  ``nats``
runs on a fresh nats-server (the ``nats_server`` fixture, which fails with the install hint
when the binary is missing).  Select one side with ``-m memory`` or ``-m integration``.
A case that passes on one side and fails on the other is a fidelity bug of the double.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
import pytest_asyncio
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


async def _no_network(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("an in-memory test tried to connect to a NATS server")


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("nats", marks=pytest.mark.integration),
    ]
)
def backbone_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """None for the in-memory side; the URL of a fresh nats-server for the other.

    Sync, so that it can ask for the (async) server fixture only when it is needed.
    """
    if request.param == "memory":
        monkeypatch.setattr(nats, "connect", _no_network)
        return None
    url: str = request.getfixturevalue("nats_server").url
    return url


@pytest_asyncio.fixture
async def backbone(backbone_url: str | None) -> AsyncIterator[Backbone]:
    backbone = Backbone("memory" if backbone_url is None else "nats", backbone_url)
    try:
        yield backbone
    finally:
        await backbone.close()


@pytest_asyncio.fixture
async def bus(backbone: Backbone) -> Bus:
    return await backbone.bus()
