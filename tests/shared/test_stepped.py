"""The kernel waiting on a stepped clock, in memory and on nats-server: a test moves fabric
time with ``advance`` instead of sleeping through it, whichever backbone is below."""

from __future__ import annotations

from typing import Any

from csfabric.kernel import ActionLedger, CloudEvent, SteppedClock, action_key, make_event
from csfabric.kernel.bus import Consumer, ConsumerOptions, Delivery

from tests.backbone import Backbone
from tests.integration._workload import consumer_settled, eventually, stream_count

SUBJECTS = "csfabric.lifecycle.>"


async def test_an_intent_left_by_a_crash_is_waited_out_on_the_clock_then_called_once(
    backbone: Backbone,
) -> None:
    """RetryLater keeps the event in hand (no attempt spent) until the intent is stale;
    the stepped clock gets there in a few advances, and the call happens exactly once."""
    clock = SteppedClock()
    bus = await backbone.bus("ledger", clock=clock)
    ledger = ActionLedger(await bus.key_value("csfabric_actions"), clock=clock, stale_after=60)
    event = make_event(type="vm.started", source="/tests/stepped", id="crash-1", subject="vm-1")
    key = action_key(event.id, "snapshot")
    at = clock.now().isoformat().encode()
    await ledger.kv.create(key, b'{"state":"intent","at":"%s","token":"crashed"}' % at)
    calls: list[str] = []
    deliveries: list[int] = []

    async def handler(event: CloudEvent, delivery: Delivery) -> None:
        deliveries.append(delivery.deliveries)

        async def call() -> dict[str, Any]:
            calls.append(event.id)
            return {"snapshot": "s-1"}

        async def nothing_found() -> None:
            return None

        await ledger.run(key, call, reconcile=nothing_found)

    consumer: Consumer[CloudEvent] = Consumer(bus, SUBJECTS, "ledger", handler, ConsumerOptions())
    await bus.publish_event(event)
    await consumer.start()
    try:
        advanced = 0.0
        while not calls:
            await eventually(
                lambda: calls or clock.sleepers, within=10, what="a retry waiting or the call"
            )
            if not calls:
                step = (clock.next_deadline or clock.now()) - clock.now()
                advanced += step.total_seconds()
                await clock.advance(step)
        await eventually(
            lambda: consumer_settled(bus, "CSFABRIC_EVENTS", "ledger"), within=10, what="settled"
        )
    finally:
        await consumer.stop()
    assert calls == ["crash-1"]
    assert advanced >= 60  # waited until the intent was stale, in fabric time
    assert set(deliveries) == {1}  # RetryLater spent none of the event's attempts
    assert (consumer.handled, consumer.dead_lettered) == (1, 0)
    assert await stream_count(bus, "CSFABRIC_DLQ") == 0
