# ruff: noqa: F811  (fixtures imported from test_ingest_feeds are redefined as arguments)
"""Where a new Kafka group starts, and the seen-set's claims between two replicas.

Against the real Kafka-protocol broker (tansu) and nats-server.  A new group starts at the
end of the topic by default (the ``listEvents`` poller is the catch-up path), at the
beginning only when ``earliest`` is asked for.  Two pipelines (two NATS connections, as two
replicas) storing the same ActionEvent at once — one from a webhook, one from a
``listEvents`` row, so the stream's duplicate window cannot tell them apart — store it once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from csfabric.cloudstack import NativeMessage
from csfabric.cloudstack._native import NativeEvent, action_event
from csfabric.ingest.feeds.kafka import KafkaFeed, start_kafka
from csfabric.ingest.handlers import SEEN_BUCKET, Pipeline, SeenSet
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel import CloudEvent, RealClock, StreamLimits, TransientError, parse_event
from csfabric.kernel.bus import Bus
from csfabric.kernel.kafka import KafkaBridgeSettings, KafkaToNats, record_key

from tests.integration.test_ingest_feeds import (
    ACCOUNT,
    SESSION_MS,
    T0,
    TZ,
    USER,
    _isolated_state,  # noqa: F401  (autouse fixture)
    bus,  # noqa: F401  (fixture)
    distinct_events,
    eventually,
    ingest_settings,
    make_context,
    publish_kafka,
    samples,
    stored,
)
from tests.integration.test_kafka_bridge import bridge_settings
from tests.integration.test_kafka_bridge import events as lifecycle_events
from tests.servers import NatsServerProcess

pytestmark = pytest.mark.integration


async def _true(value: bool) -> bool:
    return value


async def positioned(consumer: Any) -> None:
    """The group has its partitions and their start positions resolved."""
    await eventually(lambda: _true(bool(consumer.assignment())))
    for tp in consumer.assignment():
        await consumer.position(tp)


async def produce_one_by_one(bootstrap: str, topic: str, batch: list[CloudEvent]) -> None:
    """One record per produce request: tansu 0.6 answers ListOffsets(latest) with the
    base offset + 1 of a partition's last batch, so a two-record batch would put "latest"
    one record early (seen with aiokafka's end_offsets); real Kafka counts records."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in batch:
            await producer.send_and_wait(topic, event.to_json(), key=record_key(event))
    finally:
        await producer.stop()


def descriptions(messages: list[Any]) -> list[str]:
    return [parse_event(m.data or b"").data["native"]["description"] for m in messages]


# -- auto_offset_reset -------------------------------------------------------------------


def test_new_groups_start_at_latest_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert IngestSettings().kafka_offset_reset == "latest"
    assert KafkaBridgeSettings().offset_reset == "latest"
    monkeypatch.setenv("CSFABRIC_INGEST_KAFKA_OFFSET_RESET", "earliest")
    monkeypatch.setenv("CSFABRIC_KAFKA_OFFSET_RESET", "earliest")
    assert IngestSettings().kafka_offset_reset == "earliest"
    assert KafkaBridgeSettings().offset_reset == "earliest"


@pytest.mark.parametrize("reset", ["default", "earliest"])
async def test_a_new_ingest_group_replays_old_records_only_when_asked(
    reset: str, kafka_broker: str, bus: Bus, tmp_path: Path
) -> None:
    extra = {} if reset == "default" else {"kafka_offset_reset": reset}
    settings = ingest_settings(tmp_path, kafka_bootstrap=kafka_broker, **extra)
    tag = uuid.uuid4().hex
    old, new = distinct_events(f"old-{tag}", 3), distinct_events(f"new-{tag}", 2)
    await publish_kafka(kafka_broker, settings.kafka_topic, old)  # before the group exists
    pipeline = Pipeline(make_context(bus), settings)
    feed: KafkaFeed = await start_kafka(pipeline, settings, session_timeout_ms=SESSION_MS)
    try:
        assert feed._group is not None
        await positioned(feed._group.consumer)
        await publish_kafka(kafka_broker, settings.kafka_topic, new)
        expected = new if reset == "default" else old + new
        await eventually(lambda: _true(feed.stored >= len(expected)), within=30)
        await asyncio.sleep(0.5)  # old records, if replayed, would have arrived by now
    finally:
        await feed.stop()
    got = sorted(descriptions(await stored(bus)))
    assert got == sorted(e.body["description"] for e in expected)


@pytest.mark.parametrize("reset", ["default", "earliest"])
async def test_a_new_bridge_group_replays_old_records_only_when_asked(
    reset: str, kafka_broker: str, bus: Bus
) -> None:
    settings = bridge_settings(kafka_broker)  # the tests' helper asks for "earliest"
    if reset == "default":
        settings = settings.model_copy(update={"offset_reset": "latest"})
    old = lifecycle_events(f"old-{settings.group_id}", 0, 3)
    new = lifecycle_events(f"new-{settings.group_id}", 0, 2)
    await produce_one_by_one(kafka_broker, settings.topic_in, old)
    bridge = KafkaToNats(bus, settings)
    await bridge.start()
    try:
        assert bridge._consumer is not None
        await positioned(bridge._consumer)
        await produce_one_by_one(kafka_broker, settings.topic_in, new)
        expected = new if reset == "default" else old + new
        await eventually(lambda: _true(bridge.bridged >= len(expected)), within=30)
        await asyncio.sleep(0.5)
    finally:
        await bridge.stop()
    ids = sorted(parse_event(m.data or b"").id for m in await stored(bus))
    assert ids == sorted(e.id for e in expected)


# -- the seen-set's claims ---------------------------------------------------------------


def webhook_and_row(tag: str, i: int) -> tuple[NativeMessage, dict[str, Any]]:
    """One ActionEvent as a webhook delivery and as its listEvents row (different ids)."""
    event: NativeEvent = action_event(
        "VM.CREATE",
        "Completed",
        f"Successfully completed deploying Vm {tag} #{i}",
        user=USER,
        account=ACCOUNT,
        entity="VirtualMachine",
        entity_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"vm/{tag}/{i}")),
        when=T0 + timedelta(seconds=i),
        tz=TZ,
    )
    hook = NativeMessage(event.body_json(), "webhook", headers={"X-CS-Event-ID": event.event_id})
    when = T0 + timedelta(seconds=i)
    row = {
        "id": event.event_id,
        "type": "VM.CREATE",
        "state": "Completed",
        "created": when.strftime("%Y-%m-%dT%H:%M:%S+0000"),
        "description": event.body["description"],
        "resourceid": event.body["entityuuid"],
        "resourcetype": "VirtualMachine",
    }
    return hook, row


@pytest_asyncio.fixture
async def replicas(nats_server: NatsServerProcess, tmp_path: Path) -> AsyncIterator[list[Bus]]:
    buses = [
        await Bus.connect(nats_server.url, service="ingest", clock=RealClock()) for _ in range(2)
    ]
    try:
        yield buses
    finally:
        for bus in buses:
            await bus.close()


async def seen_pipeline(bus: Bus, tmp_path: Path, **seen: Any) -> Pipeline:
    kv = await bus.key_value(SEEN_BUCKET, ttl=3600)
    return Pipeline(make_context(bus), ingest_settings(tmp_path), seen=SeenSet(kv, **seen))


async def test_two_replicas_store_a_webhook_and_its_row_once(
    replicas: list[Bus], tmp_path: Path
) -> None:
    first, second = [await seen_pipeline(bus, tmp_path) for bus in replicas]
    tag = uuid.uuid4().hex
    pairs = [webhook_and_row(tag, i) for i in range(40)]
    outcomes = await asyncio.gather(
        *(first.ingest(hook) for hook, _ in pairs),
        *(second.ingest_row(row) for _, row in pairs),
    )
    messages = await stored(replicas[0])
    assert len(messages) == len(pairs), "each event stored once, by one replica"
    assert sorted(descriptions(messages)) == sorted(r["description"] for _, r in pairs)
    assert outcomes.count("stored") == len(pairs)
    assert outcomes.count("duplicate") == len(pairs)


async def test_a_failed_publish_releases_its_claim(
    replicas: list[Bus], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = replicas[0]
    pipeline = await seen_pipeline(bus, tmp_path)
    hook, row = webhook_and_row(uuid.uuid4().hex, 0)
    real = bus.publish_event
    calls = [0]

    async def fail_once(event: CloudEvent, subject: str | None = None) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise TransientError("NATS unavailable")
        return await real(event, subject)

    monkeypatch.setattr(bus, "publish_event", fail_once)
    with pytest.raises(TransientError):
        await pipeline.ingest(hook)
    assert await pipeline.ingest(hook) == "stored"  # the claim was given back
    assert await pipeline.ingest_row(row) == "duplicate"
    assert len(await stored(bus)) == 1


async def test_a_claim_left_by_a_crash_is_taken_over_once_stale(
    replicas: list[Bus], tmp_path: Path
) -> None:
    bus = replicas[0]
    hook, row = webhook_and_row(uuid.uuid4().hex, 0)
    kv = await bus.key_value(SEEN_BUCKET, ttl=3600)
    # A replica claimed the row uuid and died before publishing.
    await kv.create(row["id"], f"claimed poll {time.time():.3f}".encode())
    fresh = await seen_pipeline(bus, tmp_path, wait=0.3, stale_after=2.0)
    with pytest.raises(TransientError, match="claimed by another"):
        await fresh.ingest(hook)  # a fresh claim: maybe still publishing — not a duplicate
    assert await stored(bus) == []
    await asyncio.sleep(2.1)  # the claim goes stale (wall time, as the claim's own)
    assert await fresh.ingest(hook) == "stored"
    assert await fresh.ingest_row(row) == "duplicate"
    assert len(await stored(bus)) == 1


async def test_an_earliest_replay_past_the_duplicate_window_is_stored_once(
    kafka_broker: str, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    """With ``earliest`` the seen-set keeps every pushed event's id beyond the window.

    The stream's duplicate window is cut to 1 s here (a stream setting, not a retry
    budget), so "older than the window" takes a second, not two hours.
    """
    bus = await Bus.connect(
        nats_server.url,
        service="ingest",
        clock=RealClock(),
        stream_limits=StreamLimits(duplicate_window_seconds=1.0),
    )
    try:
        kv = await bus.key_value(SEEN_BUCKET, ttl=3600)
        settings = ingest_settings(
            tmp_path, kafka_bootstrap=kafka_broker, kafka_offset_reset="earliest"
        )
        # Every kind: usage, alert and state events have no listEvents row to match.
        events = samples()
        await publish_kafka(kafka_broker, settings.kafka_topic, events)
        pipeline = Pipeline(make_context(bus), settings, seen=SeenSet(kv))
        first = await start_kafka(pipeline, settings, session_timeout_ms=SESSION_MS)
        try:
            await eventually(lambda: _true(first.stored == len(events)), within=30)
        finally:
            await first.stop()
        await asyncio.sleep(1.5)  # past the stream's duplicate window
        # A new group (a renamed group, a wiped broker state) replays the whole topic.
        again = settings.model_copy(update={"kafka_group": settings.kafka_group + "-new"})
        second = await start_kafka(
            Pipeline(make_context(bus), again, seen=SeenSet(kv)),
            again,
            session_timeout_ms=SESSION_MS,
        )
        try:
            await eventually(lambda: _true(second.stored == len(events)), within=30)
        finally:
            await second.stop()
        assert len(await stored(bus)) == len(events)
        # Without the seen-set, the window alone would have let the same id in again.
        replay = parse_event((await stored(bus))[0].data or b"")
        assert not (await bus.publish_event(replay)).duplicate
    finally:
        await bus.close()
