"""The kernel consumer's promises, each case in memory and on nats-server: order per
resource across retries, dead letters with reason and original bytes, bad input at once,
a hand-over in order when a consumer stops mid-retry, and the redelivery limit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from csfabric.kernel import CloudEvent, PermanentError, TransientError, make_event, subject_for
from csfabric.kernel.bus import Bus, Consumer, ConsumerOptions, DeadLetter, Delivery
from nats.js.api import PubAck

from tests.backbone import Backbone
from tests.integration._workload import consumer_settled, eventually, stored, stream_count

SUBJECTS = "csfabric.lifecycle.>"
EVENTS, DLQ = "CSFABRIC_EVENTS", "CSFABRIC_DLQ"
FAST = ConsumerOptions(max_deliver=3, backoff_base=0.05, backoff_cap=0.2, max_event_bytes=2048)


def lifecycle(id: str, type: str, resource: str) -> CloudEvent:
    return make_event(id=id, type=type, source="/tests/shared", subject=resource)


async def publish(bus: Bus, *events: CloudEvent) -> None:
    for event in events:
        await bus.publish(subject_for(event), event.to_json(), msg_id=event.id)


@dataclass
class Journal:
    entries: list[tuple[str, int, str]] = field(default_factory=list)

    def ok(self) -> list[str]:
        return [type for type, _, outcome in self.entries if outcome == "ok"]


async def settled(bus: Bus, durable: str) -> None:
    await eventually(
        lambda: consumer_settled(bus, EVENTS, durable), within=15, what=f"{durable} settled"
    )


async def letters(bus: Bus, count: int) -> list[DeadLetter]:
    await eventually(lambda: _at_least(bus, DLQ, count), within=15, what=f"{count} dead letters")
    found = []
    for msg in await stored(bus, DLQ):
        assert msg.data is not None
        found.append(DeadLetter.from_message(msg.data, msg.headers or {}))
    return found


async def _at_least(bus: Bus, stream: str, count: int) -> bool:
    return await stream_count(bus, stream) >= count


async def test_a_retry_does_not_let_a_later_event_of_the_resource_overtake(bus: Bus) -> None:
    journal = Journal()

    async def handler(event: CloudEvent, delivery: Delivery) -> None:
        if event.type == "vm.started" and delivery.deliveries == 1:
            journal.entries.append((event.type, delivery.deliveries, "failed"))
            raise TransientError("cloudstack answered 530")
        journal.entries.append((event.type, delivery.deliveries, "ok"))

    await publish(
        bus,
        lifecycle("x-started", "vm.started", "vm-x"),
        lifecycle("x-done", "vm.completed", "vm-x"),
    )
    consumer: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "ordering", handler, FAST)
    await consumer.start()
    try:
        await eventually(lambda: len(journal.ok()) == 2, within=15, what=lambda: f"{journal}")
        await settled(bus, "ordering")
    finally:
        await consumer.stop()
    assert journal.entries == [
        ("vm.started", 1, "failed"),
        ("vm.started", 2, "ok"),
        ("vm.completed", 1, "ok"),
    ]
    assert (consumer.retried, consumer.handled) == (1, 2)


async def test_failures_are_dead_lettered_with_reason_and_original_bytes(bus: Bus) -> None:
    attempts: dict[str, list[int]] = {}

    async def handler(event: CloudEvent, delivery: Delivery) -> None:
        attempts.setdefault(event.id, []).append(delivery.deliveries)
        if event.type == "test.permanent":
            raise PermanentError("refused: resource carries csfabric:protect")
        if event.type == "test.transient":
            raise TransientError("cloudstack answered 530, try later")

    permanent = lifecycle("p-1", "test.permanent", "vm-p")
    transient = lifecycle("t-1", "test.transient", "vm-t")
    good = lifecycle("g-1", "test.good", "vm-g")
    await publish(bus, permanent, transient, good)
    await bus.publish("csfabric.lifecycle.test.garbage", b"not json", msg_id="garbage-1")
    consumer: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "dlq", handler, FAST)
    await consumer.start()
    try:
        found = await letters(bus, 3)
        await settled(bus, "dlq")
    finally:
        await consumer.stop()
    by_error = {letter.error: letter for letter in found}
    assert set(by_error) == {"PermanentError", "TransientError", "EnvelopeError"}
    assert by_error["PermanentError"].original == permanent.to_json()
    assert by_error["PermanentError"].deliveries == 1
    assert by_error["TransientError"].deliveries == FAST.max_deliver
    assert by_error["TransientError"].reason == "cloudstack answered 530, try later"
    assert by_error["EnvelopeError"].original == b"not json"
    assert all(letter.service == "test" and letter.stream == EVENTS for letter in found)
    assert attempts == {"p-1": [1], "t-1": [1, 2, 3], "g-1": [1]}
    assert consumer.dead_lettered == 3


async def test_stopping_during_a_retry_hands_the_resource_on_in_order(bus: Bus) -> None:
    first, second = Journal(), Journal()
    options = ConsumerOptions(backoff_base=0.5)

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
    leaving: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "handover", failing, options)
    await leaving.start()
    try:
        await eventually(lambda: first.entries, within=10, what="the first attempt")
    finally:
        await leaving.stop()  # while vm.started waits for its retry
    assert first.entries == [("vm.started", 1, "failed")]
    taking_over: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "handover", working, options)
    await taking_over.start()
    try:
        await eventually(lambda: len(second.entries) == 2, within=15, what=lambda: f"{second}")
        await settled(bus, "handover")
    finally:
        await taking_over.stop()
    assert second.ok() == ["vm.started", "vm.completed"]
    assert second.entries[0][1] == 2  # the server counted the first delivery
    assert await stream_count(bus, DLQ) == 0


class RefusingDlqBus(Bus):
    """The first ``refuse`` dead-letter publishes fail, as a full DLQ stream's would."""

    refuse = 2
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


async def test_a_failed_dead_letter_comes_back_until_stored(backbone: Backbone) -> None:
    bus = await backbone.bus("dlqfail", bus_class=RefusingDlqBus)
    assert isinstance(bus, RefusingDlqBus)
    attempts: list[int] = []

    async def handler(event: CloudEvent, delivery: Delivery) -> None:
        attempts.append(delivery.deliveries)
        raise TransientError("cloudstack answered 530, try later")

    poison = lifecycle("z-1", "vm.started", "vm-z")
    options = ConsumerOptions(max_deliver=3, backoff_base=0.05, backoff_cap=0.1)
    consumer: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "dlqfail", handler, options)
    await publish(bus, poison)
    await consumer.start()
    try:
        [letter] = await letters(bus, 1)
        await settled(bus, "dlqfail")
    finally:
        await consumer.stop()
    assert letter.original == poison.to_json()
    assert letter.deliveries == 3
    assert bus.refused == 2
    assert attempts == [1, 2, 3]  # the redeliveries only stored the dead letter


async def test_a_message_redelivered_far_past_the_budget_is_dead_lettered_unhandled(
    bus: Bus,
) -> None:
    calls: list[int] = []

    async def handler(event: CloudEvent, delivery: Delivery) -> None:
        calls.append(delivery.deliveries)

    consumer: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "crashing", handler, FAST)
    await bus.js.add_consumer(EVENTS, consumer.consumer_config())
    killer = lifecycle("k-1", "vm.started", "vm-k")
    await publish(bus, killer)
    sub = await bus.js.pull_subscribe_bind(durable="crashing", stream=EVENTS)
    for _ in range(2 * FAST.max_deliver):  # processes that died while handling it
        [msg] = await sub.fetch(1, timeout=5)
        await msg.nak()
    await sub.unsubscribe()
    await consumer.start()
    try:
        [letter] = await letters(bus, 1)
        await settled(bus, "crashing")
    finally:
        await consumer.stop()
    assert (letter.error, letter.deliveries) == ("RedeliveryLimit", 2 * FAST.max_deliver + 1)
    assert calls == []


async def test_a_consumer_made_by_an_older_release_gets_the_unlimited_server_bound(
    bus: Bus,
) -> None:
    async def never(event: CloudEvent, delivery: Delivery) -> None:
        raise AssertionError("nothing is published")

    old = Consumer(bus, SUBJECTS, "upgraded", never, FAST).consumer_config()
    old.max_deliver = FAST.max_deliver + 1
    await bus.js.add_consumer(EVENTS, old)
    consumer: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "upgraded", never, FAST)
    await consumer.start()
    try:
        info = await bus.js.consumer_info(EVENTS, "upgraded")
    finally:
        await consumer.stop()
    assert info.config.max_deliver == -1


@pytest.mark.parametrize("workers", [1, 8])
async def test_two_buses_share_one_durable_and_each_event_is_handled_once(
    backbone: Backbone, workers: int
) -> None:
    buses = [await backbone.bus("shared") for _ in range(2)]
    seen: list[tuple[int, str]] = []

    def handler(number: int):  # type: ignore[no-untyped-def]
        async def handle(event: CloudEvent, delivery: Delivery) -> None:
            seen.append((number, event.id))

        return handle

    options = ConsumerOptions(max_workers=workers, batch=4)
    consumers: list[Consumer[CloudEvent]] = [
        Consumer(bus, SUBJECTS, "pair", handler(n), options) for n, bus in enumerate(buses)
    ]
    for consumer in consumers:
        await consumer.start()
    try:
        await publish(buses[0], *(lifecycle(f"e-{n}", "vm.tick", f"vm-{n % 3}") for n in range(30)))
        await eventually(lambda: len(seen) >= 30, within=15, what=lambda: f"{len(seen)} seen")
        await settled(buses[0], "pair")
    finally:
        for consumer in consumers:
            await consumer.stop()
    assert sorted(id for _, id in seen) == sorted(f"e-{n}" for n in range(30))


@pytest.mark.parametrize("answer", ["503", "timeout"])
async def test_a_durable_deleted_under_a_running_consumer_is_recreated(
    bus: Bus, answer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator (or a lost cluster) deletes the durable: the consumer must notice and
    make it again, whether the server answers the next pull with a 503 (nats-server 2.10+)
    or lets it time out (2.9); before, it fetched in vain for ever."""
    from csfabric.kernel.bus import _consumer

    monkeypatch.setattr(_consumer, "GONE_CHECK_EVERY", 0.2)
    if answer == "timeout":
        real_fetch = _consumer.JetStreamContext.PullSubscription.fetch

        async def fetch(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return await real_fetch(self, *args, **kwargs)
            except _consumer.ServiceUnavailableError:
                raise TimeoutError from None

        monkeypatch.setattr(_consumer.JetStreamContext.PullSubscription, "fetch", fetch)
    seen: list[str] = []

    async def handle(event: CloudEvent, delivery: Delivery) -> None:
        seen.append(event.id)

    options = ConsumerOptions(fetch_timeout=0.1)
    consumer: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "deleted", handle, options)
    await consumer.start()
    try:
        await publish(bus, lifecycle("before", "vm.tick", "vm-1"))
        await eventually(lambda: seen == ["before"], within=15, what=lambda: f"{seen}")
        await bus.js.delete_consumer(EVENTS, "deleted")
        await publish(bus, lifecycle("after", "vm.tick", "vm-1"))
        await eventually(lambda: "after" in seen, within=15, what=lambda: f"{seen}")
    finally:
        await consumer.stop()
    assert (await bus.js.consumer_info(EVENTS, "deleted")).config.durable_name == "deleted"
