"""A typed handler on the kernel's consumer, on a real nats-server: the handler gets the model,
and a payload that does not fit is dead-lettered at once with the field in the reason.

The consumer is the kernel's, unchanged: ``events.typed`` adapts the handler, and the
``PayloadError`` it raises is a ``PermanentError``, which the consumer already dead-letters.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.events import EnvironmentCreated, TypedEvent, typed
from csfabric.kernel import make_event, subject_for
from csfabric.kernel.bus import Bus, Consumer, ConsumerOptions, DeadLetter, Delivery

from tests.integration._workload import DLQ_STREAM, EVENTS_STREAM, eventually, stored, stream_count

pytestmark = pytest.mark.integration

SERVICE = "typedtest"


async def test_typed_handler_gets_models_and_misfits_are_dead_lettered(
    nats_server: NatsServerProcess,
) -> None:
    handled: list[TypedEvent[EnvironmentCreated]] = []

    @typed(EnvironmentCreated)
    async def on_created(event: TypedEvent[EnvironmentCreated], delivery: Delivery) -> None:
        handled.append(event)

    bus = await Bus.connect(nats_server.url, service=SERVICE)
    options = ConsumerOptions(max_deliver=3, backoff_base=0.05, backoff_cap=0.2)
    consumer = Consumer(bus, "csfabric.lifecycle.environment.created", SERVICE, on_created, options)
    await consumer.start()
    try:
        schema = EnvironmentCreated.dataschema()
        good = make_event(
            type="environment.created",
            source="gitlab-ci",
            id="env-good",
            subject="ci-4711",
            data={"name": "ci-4711", "ttl": "4h", "labels": {"pipeline": "4711"}},
            dataschema=schema,
        )
        bad = make_event(
            type="environment.created",
            source="gitlab-ci",
            id="env-bad",
            subject="ci-4712",
            data={"name": "ci-4712", "ttl": "until friday"},
            dataschema=schema,
        )
        for event in (bad, good):
            await bus.publish(subject_for(event), event.to_json(), msg_id=event.id)

        async def one_letter() -> bool:
            return await stream_count(bus, DLQ_STREAM) >= 1

        await eventually(lambda: bool(handled), within=15, what="the good event handled")
        await eventually(one_letter, within=15, what="the bad event dead-lettered")
        (msg,) = await stored(bus, DLQ_STREAM)
        assert msg.data is not None
        letter = DeadLetter.from_message(msg.data, msg.headers or {})
        assert letter.error == "PayloadError"
        assert letter.deliveries == 1  # never retried
        assert letter.stream == EVENTS_STREAM
        assert letter.original == bad.to_json()
        assert "environment-created v1" in letter.reason
        assert "ttl:" in letter.reason
        assert "'until friday'" in letter.reason
        (got,) = handled
        assert got.id == "env-good"
        assert got.data.ttl == timedelta(hours=4)
        assert got.data.labels == {"pipeline": "4711"}
    finally:
        await consumer.stop()
        await bus.close()
