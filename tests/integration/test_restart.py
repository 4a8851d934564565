"""A nats-server crash in the middle of a run loses nothing and repeats nothing.

10,000 events are published while the only nats-server is SIGKILLed and restarted from its
file store.  Delivery is at-least-once (every event reaches the handler, some twice: acks
lost in the crash come back as redeliveries); the external action behind each event runs
exactly once (the idempotency ledger answers redeliveries from its record, and reconciles
a call whose outcome the crash kept from being recorded); publishing is exact (retried
publishes carry the same ``Nats-Msg-Id`` and are deduplicated by the stream).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from csfabric.kernel.bus import Bus
from csfabric.kernel.consumer import Consumer, ConsumerOptions
from csfabric.kernel.idempotency import BUCKET, ActionLedger
from csfabric.kernel.natsserver import NatsServerProcess

from tests.integration._workload import (
    EVENTS_STREAM,
    ActingHandler,
    Publisher,
    assert_exactly_once,
    consumer_settled,
    eventually,
    make_events,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTAL = 10_000
KILL_AFTER = 3_000
OUTAGE = 1.0  # seconds the server stays dead: the point of the test, not a guess
# Longer than the bus's 5 s request timeout: an intent is only "stale" once the call that
# wrote it can no longer be waiting for its answer, so a slow reply never causes a 2nd call.
STALE_AFTER = 6.0
OPTIONS = ConsumerOptions(
    ack_wait=5.0,  # lost acks come back within seconds of the restart
    # Retries (0.2 s doubling, capped at 2 s) outlast the outage by far: ~35 s in all.
    # The test is about losing nothing, so no message may run out of deliveries.
    max_deliver=20,
    backoff_base=0.2,
    backoff_cap=2.0,
)


async def test_server_crash_mid_run_loses_and_repeats_nothing(
    nats_server: NatsServerProcess,
) -> None:
    bus = await Bus.connect(nats_server.url, service="restart")
    ledger = ActionLedger(await bus.key_value(BUCKET), stale_after=STALE_AFTER)
    handler = ActingHandler(ledger)
    consumer = Consumer(bus, "csfabric.lifecycle.>", "restart", handler, OPTIONS)
    publisher = Publisher(
        bus, make_events(TOTAL, "restart"), consumed=lambda: len(handler.seen), lead=2_000
    )
    started = time.monotonic()
    await consumer.start()
    publishing = asyncio.create_task(publisher.run())
    try:
        await eventually(
            lambda: len(handler.seen) >= KILL_AFTER,
            within=30,
            what=lambda: f"{KILL_AFTER} consumed before the kill: {handler.summary(TOTAL)}",
        )
        assert not publishing.done(), "publishing must still be going on at the crash"
        published_at_kill = publisher.published
        nats_server.kill()
        await asyncio.sleep(OUTAGE)
        await nats_server.restart()

        await asyncio.wait_for(publishing, timeout=90)
        await eventually(
            lambda: len(handler.seen) == TOTAL and handler.done == TOTAL,
            within=120,
            what=lambda: handler.summary(TOTAL),
        )
        # Redeliveries still in flight could yet repeat an action: wait until none are.
        await eventually(
            lambda: consumer_settled(bus, EVENTS_STREAM, "restart"),
            within=60,
            what=lambda: f"consumer never settled; {handler.summary(TOTAL)}",
        )

        await assert_exactly_once(bus, handler, consumer, TOTAL)
        print(
            f"\nrestart: {time.monotonic() - started:.1f}s, killed after "
            f"{published_at_kill} published; publish retries {publisher.retries}; "
            f"{handler.summary(TOTAL)}"
        )
    finally:
        publishing.cancel()
        await asyncio.gather(publishing, return_exceptions=True)
        await consumer.stop()
        await bus.close()
