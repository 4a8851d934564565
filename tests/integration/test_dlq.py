"""What cannot be handled ends on ``csfabric.dlq.<service>`` — with the reason, the delivery
count and the original bytes — and never blocks the messages behind it.

Bad input and PermanentError are dead-lettered at the first delivery; any other failure
is retried with backoff ``max_deliver`` times first; a failure that clears on a later
delivery is simply acknowledged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import CloudEvent, PermanentError, TransientError, make_event, subject_for
from csfabric.kernel.bus import Bus, Consumer, ConsumerOptions, DeadLetter, Delivery, dlq_subject

from tests.integration._workload import (
    DLQ_STREAM,
    EVENTS_STREAM,
    consumer_settled,
    eventually,
    stored,
    stream_count,
)

pytestmark = pytest.mark.integration

SERVICE = "dlqtest"
MAX_DELIVER = 3
MAX_BYTES = 2048
OPTIONS = ConsumerOptions(
    max_deliver=MAX_DELIVER,
    backoff_base=0.05,
    backoff_cap=0.2,
    max_event_bytes=MAX_BYTES,
)


@dataclass
class Behaviour:
    """A handler whose outcome is chosen by the event type; it logs every delivery."""

    deliveries: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    handled: list[str] = field(default_factory=list)

    async def __call__(self, event: CloudEvent, delivery: Delivery) -> None:
        self.deliveries[event.id].append(delivery.deliveries)
        if event.type == "test.permanent":
            raise PermanentError("refused: resource carries csfabric:protect")
        if event.type == "test.transient":
            raise TransientError("cloudstack answered 530, try later")
        if event.type == "test.crash":
            raise RuntimeError("bug: unexpected None")
        if event.type == "test.flaky" and delivery.deliveries == 1:
            raise TransientError("first attempt times out")
        self.handled.append(event.id)


@dataclass
class Rig:
    bus: Bus
    behaviour: Behaviour
    consumer: Consumer[CloudEvent]

    async def publish_raw(self, subject: str, payload: bytes) -> int:
        return (await self.bus.publish(subject, payload)).seq

    async def publish(self, event: CloudEvent) -> int:
        # Exactly these bytes, so that the dead letter can be compared with them (no
        # trace context is added, whatever tracing another test set up in this process).
        ack = await self.bus.publish(subject_for(event), event.to_json(), msg_id=event.id)
        return ack.seq

    async def publish_good(self, count: int) -> list[str]:
        events = [event(f"good-{n}", "test.good") for n in range(count)]
        for good in events:
            await self.publish(good)
        return [good.id for good in events]

    async def dead_letters(self, count: int) -> list[tuple[str, DeadLetter]]:
        """Wait for ``count`` dead letters; (DLQ subject, letter) in arrival order."""
        await eventually(
            lambda: _count(self.bus, DLQ_STREAM, count),
            within=15,
            what=lambda: f"{count} dead letters; deliveries {dict(self.behaviour.deliveries)}",
        )
        letters = []
        for msg in await stored(self.bus, DLQ_STREAM):
            assert msg.data is not None
            assert msg.subject is not None
            letters.append((msg.subject, DeadLetter.from_message(msg.data, msg.headers or {})))
        return letters

    async def settled(self) -> None:
        await eventually(
            lambda: consumer_settled(self.bus, EVENTS_STREAM, SERVICE),
            within=15,
            what=lambda: f"consumer settled; deliveries {dict(self.behaviour.deliveries)}",
        )


async def _count(bus: Bus, stream: str, want: int) -> bool:
    return await stream_count(bus, stream) >= want


def event(id: str, type: str, data: Any = None) -> CloudEvent:
    return make_event(id=id, type=type, source="/tests/dlq", subject=id, data=data)


@pytest_asyncio.fixture
async def rig(nats_server: NatsServerProcess) -> AsyncIterator[Rig]:
    bus = await Bus.connect(nats_server.url, service=SERVICE)
    behaviour = Behaviour()
    consumer = Consumer(bus, "csfabric.lifecycle.>", SERVICE, behaviour, OPTIONS)
    await consumer.start()
    try:
        yield Rig(bus, behaviour, consumer)
    finally:
        await consumer.stop()
        await bus.close()


async def test_bad_input_and_permanent_errors_are_dead_lettered_at_once(rig: Rig) -> None:
    not_json = b"<event>not json</event>"
    not_event = b'{"hello": "world"}'
    incomplete = b'{"specversion": "1.0", "id": "x-1"}'
    oversized = event("big-1", "test.good", data={"blob": "y" * MAX_BYTES})
    oversized_bytes = oversized.to_json()
    refused = event("refused-1", "test.permanent")
    seqs = {
        "not_json": await rig.publish_raw("csfabric.lifecycle.bad.text", not_json),
        "not_event": await rig.publish_raw("csfabric.lifecycle.bad.json", not_event),
        "incomplete": await rig.publish_raw("csfabric.lifecycle.bad.partial", incomplete),
        "oversized": await rig.publish(oversized),
        "refused": await rig.publish(refused),
    }
    good = await rig.publish_good(20)

    arrived = await rig.dead_letters(5)
    letters = {letter.stream_seq: (subject, letter) for subject, letter in arrived}
    await eventually(
        lambda: set(rig.behaviour.handled) >= set(good),
        within=15,
        what=lambda: f"good events handled after the bad ones: {rig.behaviour.handled}",
    )
    await rig.settled()

    assert set(letters) == set(seqs.values())
    expected = {
        "not_json": (
            not_json,
            "csfabric.lifecycle.bad.text",
            "EnvelopeError",
            "event is not JSON: Expecting value: line 1 column 1 (char 0)",
        ),
        "not_event": (
            not_event,
            "csfabric.lifecycle.bad.json",
            "EnvelopeError",
            "specversion must be '1.0', got None",
        ),
        "incomplete": (
            incomplete,
            "csfabric.lifecycle.bad.partial",
            "EnvelopeError",
            "source: required attribute is missing; type: required attribute is missing",
        ),
        "oversized": (
            oversized_bytes,
            "csfabric.lifecycle.test.good",
            "EnvelopeError",
            f"event is {len(oversized_bytes)} bytes, over the {MAX_BYTES}-byte limit",
        ),
        "refused": (
            refused.to_json(),
            "csfabric.lifecycle.test.permanent",
            "PermanentError",
            "refused: resource carries csfabric:protect",
        ),
    }
    for name, (original, subject, error, reason) in expected.items():
        dlq_subject_seen, letter = letters[seqs[name]]
        assert dlq_subject_seen == dlq_subject(SERVICE), name
        assert letter.service == SERVICE, name
        assert letter.original == original, name  # byte for byte
        assert letter.subject == subject, name
        assert (letter.error, letter.reason) == (error, reason), name
        assert letter.deliveries == 1, name  # never retried
        assert letter.stream == EVENTS_STREAM, name
    # Only the PermanentError reached the handler, once; the bad envelopes never did.
    assert dict(rig.behaviour.deliveries).get("refused-1") == [1]
    assert rig.consumer.dead_lettered == 5
    assert len(oversized_bytes) > MAX_BYTES


async def test_failing_handler_is_retried_max_deliver_times_then_dead_lettered(rig: Rig) -> None:
    transient = event("transient-1", "test.transient")
    crash = event("crash-1", "test.crash")
    seqs = {transient.id: await rig.publish(transient), crash.id: await rig.publish(crash)}
    good = await rig.publish_good(10)

    letters = {letter.stream_seq: letter for _, letter in await rig.dead_letters(2)}
    await eventually(
        lambda: set(rig.behaviour.handled) >= set(good),
        within=15,
        what=lambda: f"good events handled after the failing ones: {rig.behaviour.handled}",
    )
    await rig.settled()

    for source, error, reason in (
        (transient, "TransientError", "cloudstack answered 530, try later"),
        (crash, "RuntimeError", "bug: unexpected None"),
    ):
        letter = letters[seqs[source.id]]
        assert (letter.error, letter.reason) == (error, reason)
        assert letter.deliveries == MAX_DELIVER
        assert letter.original == source.to_json()
        # Exactly max_deliver attempts, and none after the dead-lettering ack.
        assert rig.behaviour.deliveries[source.id] == list(range(1, MAX_DELIVER + 1))
    assert rig.consumer.dead_lettered == 2


async def test_failure_that_clears_on_redelivery_is_acked_not_dead_lettered(rig: Rig) -> None:
    flaky = event("flaky-1", "test.flaky")
    await rig.publish(flaky)
    await eventually(
        lambda: flaky.id in rig.behaviour.handled,
        within=15,
        what=lambda: f"flaky event handled on its 2nd delivery: {dict(rig.behaviour.deliveries)}",
    )
    await rig.settled()

    assert rig.behaviour.deliveries[flaky.id] == [1, 2]
    assert rig.behaviour.handled == [flaky.id]
    assert await stream_count(rig.bus, DLQ_STREAM) == 0
    assert rig.consumer.dead_lettered == 0
