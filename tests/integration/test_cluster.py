"""Losing the stream leader of a three-node cluster loses and repeats nothing.

Streams, the durable consumer and the idempotency bucket all have three replicas.  The node
leading ``CSFABRIC_EVENTS`` is SIGKILLed mid-run and stays dead: the remaining two elect a
new leader, the client moves to a live node, and the run completes with every event seen,
every action executed once and every event stored once.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import ScaledClock, StreamLimits, open_ledger
from csfabric.kernel.bus import Bus, Consumer, ConsumerOptions

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

TOTAL = 5_000
KILL_AFTER = 1_500
# The shipped defaults (ConsumerOptions(), the ledger's), fabric time 3x faster: see
# test_restart.py.  While a stream or KV leader is re-elected (up to ~10 s) the ledger's
# KV calls are retried in wall time by retry_broker (~15 s), not out of the event's
# deliveries.
CLOCK_FACTOR = 3.0
OPTIONS = ConsumerOptions()


async def stream_leader(bus: Bus, stream: str) -> str:
    """Name of the node leading ``stream``, once it has one."""
    leader: str | None = None

    async def elected() -> bool:
        nonlocal leader
        info = await bus.js.stream_info(stream)
        leader = info.cluster.leader if info.cluster else None
        return leader is not None

    await eventually(elected, within=20, what=f"{stream} has no leader")
    assert leader is not None
    return leader


async def test_stream_leader_crash_loses_and_repeats_nothing(
    nats_cluster: list[NatsServerProcess],
) -> None:
    urls = [node.url for node in nats_cluster]
    clock = ScaledClock(datetime.now(UTC), CLOCK_FACTOR)
    limits = StreamLimits(replicas=3)
    bus = await Bus.connect(urls, service="cluster", clock=clock, stream_limits=limits)
    handler = ActingHandler(await open_ledger(bus, replicas=3))
    consumer = Consumer(bus, "csfabric.lifecycle.>", "cluster", handler, OPTIONS)
    publisher = Publisher(
        bus, make_events(TOTAL, "cluster"), consumed=lambda: len(handler.seen), lead=1_000
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
        leader = await stream_leader(bus, EVENTS_STREAM)
        victim = next(node for node in nats_cluster if node.name == leader)
        published_at_kill = publisher.published
        victim.kill()
        killed_at = time.monotonic()

        await asyncio.wait_for(publishing, timeout=60)
        await eventually(
            lambda: len(handler.seen) == TOTAL and handler.done == TOTAL,
            within=60,
            what=lambda: handler.summary(TOTAL),
        )
        await eventually(
            lambda: consumer_settled(bus, EVENTS_STREAM, "cluster"),
            within=30,
            what=lambda: f"consumer never settled; {handler.summary(TOTAL)}",
        )
        new_leader = await stream_leader(bus, EVENTS_STREAM)

        assert new_leader != leader
        await assert_exactly_once(bus, handler, consumer, TOTAL)
        print(
            f"\ncluster: {time.monotonic() - started:.1f}s, killed leader {leader} after "
            f"{published_at_kill} published, new leader {new_leader}, done "
            f"{time.monotonic() - killed_at:.1f}s after the kill; publish retries "
            f"{publisher.retries}; {handler.summary(TOTAL)}"
        )
    finally:
        publishing.cancel()
        await asyncio.gather(publishing, return_exceptions=True)
        await consumer.stop()
        await bus.close()
