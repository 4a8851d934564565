"""Seams between the issue-9 fixes, each against a real nats-server with default budgets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from csfabric.kernel.bus import Bus
from csfabric.kernel.consumer import Consumer, ConsumerOptions, Delivery
from csfabric.kernel.dlq import DeadLetter
from csfabric.kernel.envelope import make_event, subject_for
from csfabric.kernel.errors import PermanentError
from csfabric.kernel.natsserver import NatsServerProcess

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
