"""Ingest crashing in the middle of a 5,000-event stream loses nothing and stores nothing twice.

The first ingest "process" (its own NATS connection, pipeline and feed) is stopped with no
grace once about 2,000 events are stored: whatever it had in flight is neither acked nor
committed, so the broker hands it to the second one, and the JetStream duplicate window
drops what had already been stored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from csfabric.cloudstack._native import NativeEvent
from csfabric.ingest.feeds.amqp import AmqpFeed, start_amqp
from csfabric.ingest.feeds.kafka import KafkaFeed, start_kafka
from csfabric.ingest.handlers import Pipeline
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel import RealClock, parse_event
from csfabric.kernel.bus import Bus

from tests.integration.test_ingest_feeds import (
    DLQ,
    SESSION_MS,
    distinct_events,
    eventually,
    ingest_settings,
    make_context,
    publish_amqp,
    rabbit_cleanup,
    stored,
    stream_count,
)
from tests.servers import NatsServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTAL = 5_000
CRASH_AFTER = 2_000

Feed = AmqpFeed | KafkaFeed
StartFeed = Callable[[Pipeline, IngestSettings], Awaitable[Feed]]


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No dev.json of a running `csfabric dev` may leak into these settings.
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path / "state"))


@asynccontextmanager
async def ingest_process(
    url: str, settings: IngestSettings, start: StartFeed
) -> AsyncIterator[tuple[Bus, Feed]]:
    """One ingest "process": its own NATS connection, pipeline and feed."""
    bus = await Bus.connect(url, service="ingest", clock=RealClock())
    try:
        feed = await start(Pipeline(make_context(bus), settings), settings)
        yield bus, feed
    finally:
        await bus.close()


async def at_least(bus: Bus, count: int) -> bool:
    return await stream_count(bus) >= count


async def crash_and_restart(
    nats_url: str, settings: IngestSettings, start: StartFeed, publish: Awaitable[None]
) -> Bus:
    """Run ingest, crash it after CRASH_AFTER stored, run a new one until TOTAL stored."""
    publishing = asyncio.ensure_future(publish)
    try:
        async with ingest_process(nats_url, settings, start) as (bus, feed):
            await eventually(lambda: at_least(bus, CRASH_AFTER), within=120.0)
            await feed.stop(grace=0)  # a crash: in-flight messages are never acked
            at_crash = await stream_count(bus)
        # Otherwise the second process had nothing left to prove.
        assert CRASH_AFTER <= at_crash < TOTAL
        async with ingest_process(nats_url, settings, start) as (bus, feed):
            await publishing
            await eventually(lambda: at_least(bus, TOTAL), within=120.0)
            await asyncio.sleep(1.0)  # redeliveries still under way would show up now
            await feed.stop()
    finally:
        publishing.cancel()
        await asyncio.gather(publishing, return_exceptions=True)
    return await Bus.connect(nats_url, service="ingest-check", clock=RealClock())


async def check_exactly_once(bus: Bus, events: list[NativeEvent]) -> None:
    assert await stream_count(bus) == TOTAL
    assert await stream_count(bus, DLQ) == 0
    descriptions = {
        parse_event(m.data or b"").data["native"]["description"] for m in await stored(bus)
    }
    assert descriptions == {e.body["description"] for e in events}


async def test_amqp_restart_mid_stream_stores_everything_once(
    rabbitmq_url: str, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    settings = ingest_settings(tmp_path, amqp_url=rabbitmq_url)
    events = distinct_events(uuid.uuid4().hex, TOTAL)
    # Declare the queue first, as a running ingest would have: CloudStack's exchange keeps
    # nothing for queues that do not exist yet.
    async with rabbit_cleanup(rabbitmq_url, settings):
        async with ingest_process(nats_server.url, settings, start_amqp) as (_, feed):
            await feed.stop()
        check = await crash_and_restart(
            nats_server.url,
            settings,
            start_amqp,
            publish_amqp(rabbitmq_url, settings.amqp_exchange, events),
        )
    try:
        await check_exactly_once(check, events)
    finally:
        await check.close()


async def test_kafka_restart_mid_stream_stores_everything_once(
    kafka_broker: str, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    # Publishing starts while the first group joins: "earliest" so nothing is skipped.
    settings = ingest_settings(
        tmp_path, kafka_bootstrap=kafka_broker, kafka_offset_reset="earliest"
    )
    events = distinct_events(uuid.uuid4().hex, TOTAL)

    async def start(pipeline: Pipeline, s: IngestSettings) -> Feed:
        return await start_kafka(pipeline, s, session_timeout_ms=SESSION_MS)

    async def publish() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_broker, acks="all")
        await producer.start()
        try:
            sends: list[Any] = [
                await producer.send(settings.kafka_topic, value=e.body_json(), key=e.kafka_key)
                for e in events
            ]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()

    check = await crash_and_restart(nats_server.url, settings, start, publish())
    try:
        await check_exactly_once(check, events)
    finally:
        await check.close()
