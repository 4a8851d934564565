"""Seams between the issue-9 fixes, each against a real nats-server with default budgets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import (
    LEASE_BUCKET,
    LEDGER_BUCKET,
    ActionLedger,
    Lease,
    SteppedClock,
    action_key,
    make_event,
    subject_for,
)
from csfabric.kernel.bus import Bus, Consumer, ConsumerOptions, DeadLetter, Delivery
from csfabric.kernel.errors import LeaseLost, PermanentError, RetryLater

from tests.integration._workload import (
    DLQ_STREAM,
    EVENTS_STREAM,
    consumer_settled,
    eventually,
    stored,
)

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def bus(nats_server: NatsServerProcess) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server.url, service="seams")
    try:
        yield bus
    finally:
        await bus.close()


async def test_a_reason_with_a_lone_surrogate_is_dead_lettered_not_retried_for_ever(
    bus: Bus,
) -> None:
    # A handler quoting bytes it decoded with surrogateescape: the reason holds "\udcff",
    # which a NATS header (UTF-8) cannot carry.  The letter must still be stored.
    async def handler(event: object, delivery: Delivery) -> None:
        text = b"name \xff".decode("utf-8", "surrogateescape")
        raise PermanentError(f"unexpected {text}")

    event = make_event(id="s-1", type="vm.started", source="/tests/seams", subject="vm-s")
    await bus.publish(subject_for(event), event.to_json(), msg_id=event.id)
    consumer: Consumer[object] = Consumer(
        bus, "csfabric.lifecycle.>", "seams", handler, ConsumerOptions()
    )
    await consumer.start()
    try:
        await eventually(
            lambda: consumer_settled(bus, EVENTS_STREAM, "seams"),
            within=10,
            what="the message settled (its dead letter stored)",
        )
        [letter_msg] = await stored(bus, DLQ_STREAM)
    finally:
        await consumer.stop()
    assert letter_msg.data is not None
    letter = DeadLetter.from_message(letter_msg.data, letter_msg.headers or {})
    assert letter.error == "PermanentError"
    assert letter.reason == "unexpected name \\udcff"
    assert consumer.dead_lettered == 1


async def test_a_term_that_ends_while_the_call_acts_is_not_a_failure_to_repeat(
    nats_server: NatsServerProcess,
) -> None:
    # A call fenced by a lease (``async with lease.fenced()``) whose term runs out while
    # CloudStack acts: fenced() raises LeaseLost after the act.  The ledger must not take
    # that for "failed, nothing happened" and let the next holder call again.
    bus = await Bus.connect(nats_server.url, service="seams", create_streams=False)
    try:
        clock = SteppedClock()
        leases = await bus.key_value(LEASE_BUCKET)
        ledger = ActionLedger(await bus.key_value(LEDGER_BUCKET), clock=clock)
        first = Lease(leases, "seams", ttl=15.0, holder="first", clock=clock)
        assert await first.acquire()
        acts: list[str] = []

        async def call_under(lease: Lease) -> str:
            async with lease.fenced():
                acts.append(lease.holder)  # CloudStack did it ...
                await clock.advance(15.0)  # ... and the answer came after the term
            return "done"

        key = action_key("seams", "snapshot vm-1")
        with pytest.raises(LeaseLost):
            await ledger.run(key, lambda: call_under(first))
        assert acts == ["first"]
        second = Lease(leases, "seams", ttl=15.0, holder="second", clock=clock)
        assert not await second.acquire()  # first seen now: wait a full TTL
        await clock.advance(15.0)
        assert await second.acquire()
        with pytest.raises(RetryLater):  # of unknown outcome: waited out, not repeated
            await ledger.run(key, lambda: call_under(second))
        assert acts == ["first"]
        state = await ledger.state(key)
        assert state is not None
        assert state["state"] == "unknown"
    finally:
        await bus.close()
