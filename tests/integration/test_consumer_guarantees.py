"""What the kernel consumer promises, each against a real nats-server with default retries.

* Per-resource order holds across retries: a failed event is retried in process while the
  later events of its resource wait, so none overtakes it; a consumer that stops during a
  retry releases the chain in order, and the next consumer sees it in order.
* A message is acked only once it was handled or its dead letter is stored: a dead-letter
  publish that fails on the last attempt brings the message back, never drops it.
* Messages in hand are kept alive (``in_progress``): a handler slower than ``ack_wait`` is
  not redelivered to a second worker.

Retry budgets are the shipped defaults (5 attempts, 1 s doubling); where a test needs
ack_wait or backoffs to pass quickly it runs on a scaled kernel clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import Clock, CloudEvent, ScaledClock, TransientError, make_event, subject_for
from csfabric.kernel.bus import Bus, Consumer, ConsumerOptions, DeadLetter, Delivery
from nats.js.api import PubAck

from tests.integration._workload import (
    DLQ_STREAM,
    EVENTS_STREAM,
    consumer_settled,
    eventually,
    stored,
    stream_count,
)

pytestmark = pytest.mark.integration

SUBJECTS = "csfabric.lifecycle.>"
DEFAULTS = ConsumerOptions()


def lifecycle(id: str, type: str, resource: str) -> CloudEvent:
    return make_event(id=id, type=type, source="/tests/consumer", subject=resource)


async def publish(bus: Bus, *events: CloudEvent) -> None:
    for event in events:
        await bus.publish(subject_for(event), event.to_json(), msg_id=event.id)


@dataclass
class Journal:
    """What a handler saw, in order: (event type, attempt, "ok" | "failed")."""

    entries: list[tuple[str, int, str]] = field(default_factory=list)

    def ok(self) -> list[str]:
        return [type for type, _, outcome in self.entries if outcome == "ok"]


@pytest_asyncio.fixture
async def bus(nats_server: NatsServerProcess) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server.url, service="ordering")
    try:
        yield bus
    finally:
        await bus.close()


async def test_a_retry_does_not_let_a_later_event_of_the_resource_overtake(bus: Bus) -> None:
    journal = Journal()

    async def handler(event: CloudEvent, delivery: Delivery) -> None:
        if event.type == "vm.started" and delivery.deliveries == 1:
            journal.entries.append((event.type, delivery.deliveries, "failed"))
            raise TransientError("cloudstack answered 530")
        journal.entries.append((event.type, delivery.deliveries, "ok"))

    # Both are stored before the consumer starts, so one fetch brings them together.
    await publish(
        bus,
        lifecycle("x-started", "vm.started", "vm-x"),
        lifecycle("x-done", "vm.completed", "vm-x"),
    )
    consumer: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "ordering", handler, DEFAULTS)
    await consumer.start()
    try:
        await eventually(
            lambda: len(journal.ok()) == 2,
            within=15,
            what=lambda: f"both handled: {journal.entries}",
        )
        await eventually(
            lambda: consumer_settled(bus, EVENTS_STREAM, "ordering"),
            within=10,
            what="consumer settled",
        )
    finally:
        await consumer.stop()
    assert journal.entries == [
        ("vm.started", 1, "failed"),
        ("vm.started", 2, "ok"),
        ("vm.completed", 1, "ok"),
    ]
    assert consumer.retried == 1
    assert consumer.handled == 2


async def test_stopping_during_a_retry_hands_the_resource_on_in_order(bus: Bus) -> None:
    """The stopping consumer releases the retried event and the one queued behind it; the
    server redelivers both, in stream order, to the consumer that takes over."""
    first, second = Journal(), Journal()

    async def failing(event: CloudEvent, delivery: Delivery) -> None:
        first.entries.append((event.type, delivery.deliveries, "failed"))
        raise TransientError("cloudstack answered 530")

    async def working(event: CloudEvent, delivery: Delivery) -> None:
        second.entries.append((event.type, delivery.deliveries, "ok"))

    await publish(
        bus,
        lifecycle("y-started", "vm.started", "vm-y"),
        lifecycle("y-done", "vm.completed", "vm-y"),
    )
    leaving: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "handover", failing, DEFAULTS)
    await leaving.start()
    try:
        await eventually(lambda: first.entries, within=10, what="the first attempt of vm.started")
    finally:
        await leaving.stop()  # while vm.started waits for its retry
    # Only the first attempt of vm.started ran; vm.completed never reached the handler.
    assert first.entries == [("vm.started", 1, "failed")]

    taking_over: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "handover", working, DEFAULTS)
    await taking_over.start()
    try:
        await eventually(
            lambda: len(second.entries) == 2, within=15, what=lambda: f"{second.entries}"
        )
        await eventually(
            lambda: consumer_settled(bus, EVENTS_STREAM, "handover"),
            within=10,
            what="consumer settled",
        )
    finally:
        await taking_over.stop()
    assert second.ok() == ["vm.started", "vm.completed"]
    assert await stream_count(bus, DLQ_STREAM) == 0


class RefusingDlqBus(Bus):
    """A bus whose first ``refuse`` dead-letter publishes fail, as a full or unreachable
    DLQ stream would make them; every other publish goes to the real server."""

    refuse = 0
    refused = 0

    async def publish(
        self,
        subject: str,
        payload: bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> PubAck:
        if subject.startswith("csfabric.dlq.") and self.refused < self.refuse:
            self.refused += 1
            raise TransientError("publish csfabric.dlq: stream refused the message")
        return await super().publish(subject, payload, msg_id=msg_id, headers=headers)


def scaled(factor: float) -> Clock:
    """Fabric time ``factor`` times faster than wall time, from now on."""
    return ScaledClock(datetime.now(UTC), factor)


async def test_a_failed_dead_letter_on_the_last_attempt_comes_back_until_stored(
    nats_server: NatsServerProcess,
) -> None:
    # Default budget (5 attempts, 1 s doubling, ack_wait 30 s) on a clock 20x faster.
    bus = await RefusingDlqBus.connect(nats_server.url, service="dlqfail", clock=scaled(20))
    assert isinstance(bus, RefusingDlqBus)
    bus.refuse = 2
    attempts: list[int] = []

    async def handler(event: CloudEvent, delivery: Delivery) -> None:
        attempts.append(delivery.deliveries)
        raise TransientError("cloudstack answered 530, try later")

    poison = lifecycle("z-1", "vm.started", "vm-z")
    consumer: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "dlqfail", handler, DEFAULTS)
    await publish(bus, poison)
    await consumer.start()
    try:
        await eventually(
            lambda: stream_count(bus, DLQ_STREAM),
            within=20,
            what=lambda: f"a dead letter; attempts {attempts}, refused {bus.refused}",
        )
        await eventually(
            lambda: consumer_settled(bus, EVENTS_STREAM, "dlqfail"),
            within=10,
            what="consumer settled",
        )
        [stored_letter] = await stored(bus, DLQ_STREAM)
    finally:
        await consumer.stop()
        await bus.close()
    assert stored_letter.data is not None
    letter = DeadLetter.from_message(stored_letter.data, stored_letter.headers or {})
    assert letter.original == poison.to_json()
    assert (letter.error, letter.reason) == ("TransientError", "cloudstack answered 530, try later")
    assert letter.deliveries == DEFAULTS.max_deliver
    assert bus.refused == 2
    # The budget was spent once; the redeliveries only stored the dead letter.
    assert attempts == list(range(1, DEFAULTS.max_deliver + 1))
    assert consumer.dead_lettered == 1


async def test_a_handler_slower_than_ack_wait_is_not_redelivered_to_a_second_worker(
    nats_server: NatsServerProcess,
) -> None:
    # A short ack_wait so that "three times ack_wait" takes seconds; the retry budget is
    # the default one.  Two buses: two workers of one durable consumer.
    ack_wait = 1.5
    options = ConsumerOptions(ack_wait=ack_wait)
    buses = [await Bus.connect(nats_server.url, service="slow") for _ in range(2)]
    calls: list[tuple[int, int]] = []

    def worker(number: int) -> Any:
        async def handler(event: CloudEvent, delivery: Delivery) -> None:
            calls.append((number, delivery.deliveries))
            await asyncio.sleep(3 * ack_wait)

        return handler

    consumers: list[Consumer[CloudEvent]] = [
        Consumer(bus, SUBJECTS, "slow", worker(n), options) for n, bus in enumerate(buses)
    ]
    try:
        for consumer in consumers:
            await consumer.start()
        await publish(buses[0], lifecycle("slow-1", "vm.started", "vm-slow"))
        await eventually(lambda: calls, within=10, what="the handler started")
        await eventually(
            lambda: sum(c.handled for c in consumers) == 1,
            within=15,
            what=lambda: f"handled once; calls {calls}",
        )
        await eventually(
            lambda: consumer_settled(buses[0], EVENTS_STREAM, "slow"),
            within=10,
            what="consumer settled",
        )
        info = await buses[0].js.consumer_info(EVENTS_STREAM, "slow")
    finally:
        for consumer in consumers:
            await consumer.stop()
        for bus in buses:
            await bus.close()
    assert len(calls) == 1, calls
    assert calls[0][1] == 1
    assert info.delivered.consumer_seq == 1  # the server delivered it exactly once


async def test_a_consumer_made_by_an_older_release_gets_the_unlimited_server_bound(
    bus: Bus,
) -> None:
    """Older releases set the server's max_deliver to ours + 1, which drops a message whose
    dead letter failed on the last delivery; starting updates the durable consumer."""
    old = Consumer(bus, SUBJECTS, "upgraded", _never_called, DEFAULTS).consumer_config()
    old.max_deliver = DEFAULTS.max_deliver + 1
    await bus.js.add_consumer(EVENTS_STREAM, old)
    consumer: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "upgraded", _never_called, DEFAULTS)
    await consumer.start()
    try:
        info = await bus.js.consumer_info(EVENTS_STREAM, "upgraded")
    finally:
        await consumer.stop()
    assert info.config.max_deliver == -1


async def _never_called(event: CloudEvent, delivery: Delivery) -> None:
    raise AssertionError("no event is published in this test")


async def test_a_message_redelivered_far_past_the_budget_is_dead_lettered_unhandled(
    bus: Bus,
) -> None:
    """With no server bound, what bounds a message that kills every process handling it is
    the consumer: past twice its budget of deliveries it is dead-lettered, not handled."""
    calls: list[int] = []

    async def handler(event: CloudEvent, delivery: Delivery) -> None:
        calls.append(delivery.deliveries)

    consumer: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "crashing", handler, DEFAULTS)
    await bus.js.add_consumer(EVENTS_STREAM, consumer.consumer_config())
    killer = lifecycle("k-1", "vm.started", "vm-k")
    await publish(bus, killer)
    # Stand-in for processes that die while handling it: deliveries never settled.
    sub = await bus.js.pull_subscribe_bind(durable="crashing", stream=EVENTS_STREAM)
    for _ in range(2 * DEFAULTS.max_deliver):
        [msg] = await sub.fetch(1, timeout=5)
        await msg.nak()
    await sub.unsubscribe()

    await consumer.start()
    try:
        await eventually(lambda: stream_count(bus, DLQ_STREAM), within=10, what="a dead letter")
        await eventually(
            lambda: consumer_settled(bus, EVENTS_STREAM, "crashing"),
            within=10,
            what="consumer settled",
        )
        [message] = await stored(bus, DLQ_STREAM)
    finally:
        await consumer.stop()
    assert message.data == killer.to_json()
    letter = DeadLetter.from_message(message.data, message.headers or {})
    assert (letter.error, letter.deliveries) == ("RedeliveryLimit", 2 * DEFAULTS.max_deliver + 1)
    assert calls == []
