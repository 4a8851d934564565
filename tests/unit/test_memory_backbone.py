"""What only the in-memory backbone can do: step the *server's* timers too.

``MemoryNats(clock=SteppedClock())`` runs ``ack_wait``, nak delays, TTLs and the dedupe
window on that clock, so hours of server time pass in one ``advance``.  (Cases that must
hold on nats-server as well live in ``tests/shared/``.)
"""

from __future__ import annotations

import pytest
from csfabric.kernel import SteppedClock
from csfabric.kernel.testing import MemoryNats, memory_bus
from nats.errors import ConnectionClosedError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import KeyNotFoundError

pytestmark = pytest.mark.memory


async def test_ack_wait_and_nak_delays_run_on_the_servers_stepped_clock() -> None:
    clock = SteppedClock()
    bus = await memory_bus(MemoryNats(clock=clock), create_streams=False)
    await bus.js.add_stream(StreamConfig(name="S", subjects=["s.>"]))
    await bus.js.add_consumer("S", ConsumerConfig(durable_name="d", ack_wait=3600))
    await bus.js.publish("s.a", b"x")
    sub = await bus.js.pull_subscribe_bind(durable="d", stream="S")
    [msg] = await sub.fetch(1, timeout=1)
    assert msg.metadata.num_delivered == 1
    with pytest.raises(NatsTimeoutError):
        await sub.fetch(1, timeout=0.05)
    await clock.advance(3600)
    [again] = await sub.fetch(1, timeout=1)
    assert again.metadata.num_delivered == 2
    await again.nak(delay=600)
    await clock.advance(599)
    with pytest.raises(NatsTimeoutError):
        await sub.fetch(1, timeout=0.05)
    await clock.advance(1)
    [third] = await sub.fetch(1, timeout=1)
    assert third.metadata.num_delivered == 3


async def test_ttl_and_the_dedupe_window_run_on_the_servers_stepped_clock() -> None:
    clock = SteppedClock()
    bus = await memory_bus(MemoryNats(clock=clock), clock=clock)
    kv = await bus.key_value("expiring", ttl=7 * 24 * 3600)
    await kv.put("k", b"v")
    await clock.advance(7 * 24 * 3600 - 1)
    assert (await kv.get("k")).value == b"v"
    await clock.advance(1)
    with pytest.raises(KeyNotFoundError):
        await kv.get("k")

    first = await bus.publish("csfabric.audit.x", b"1", msg_id="same")
    assert (await bus.publish("csfabric.audit.x", b"1", msg_id="same")).duplicate
    await clock.advance(2 * 3600)  # the contract streams' duplicate window
    later = await bus.publish("csfabric.audit.x", b"1", msg_id="same")
    assert not later.duplicate
    assert later.seq == first.seq + 1


async def test_a_closed_client_refuses_like_a_closed_connection() -> None:
    bus = await memory_bus()
    await bus.close()
    assert bus.nc.is_closed
    with pytest.raises(ConnectionClosedError):
        await bus.js.stream_info("CSFABRIC_EVENTS")
