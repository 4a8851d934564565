"""The example of docs/testing.md, kept runnable: a service's handler tested in memory."""

from __future__ import annotations

import asyncio

import pytest
from csfabric.kernel import CloudEvent, SteppedClock, TransientError, make_event
from csfabric.kernel.bus import Delivery
from csfabric.kernel.testing import MemoryNats, memory_bus, service_context

pytestmark = pytest.mark.memory


async def test_a_handler_retried_on_the_stepped_clock_acts_once_per_event() -> None:
    clock = SteppedClock()
    bus = await memory_bus(MemoryNats(), service="demo", clock=clock)
    ctx = service_context(bus)
    attempts: list[tuple[str, int]] = []

    async def handle(event: CloudEvent, delivery: Delivery) -> None:
        attempts.append((event.id, delivery.deliveries))
        if delivery.deliveries == 1:
            raise TransientError("CloudStack answered 530")

    await ctx.consume("csfabric.lifecycle.>", "demo", handle)
    event = make_event(type="vm.started", source="/demo", id="e-1", subject="vm-1")
    await bus.publish_event(event)
    assert (await bus.publish_event(event)).duplicate  # same id: stored once

    while not attempts:  # the consumer fetches in the background
        await asyncio.sleep(0.01)
    assert clock.sleepers == 1  # the retry waits on the kernel clock ...
    await clock.advance(60)  # ... so the test moves time instead of sleeping
    while len(attempts) < 2:
        await asyncio.sleep(0.01)
    await ctx.close(timeout=5)
    assert attempts == [("e-1", 1), ("e-1", 2)]
