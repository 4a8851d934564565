"""The Kafka bridge against a real Kafka-protocol broker (tansu) and a real nats-server.

Joining a consumer group on tansu takes about half the session timeout, so the bridges
here use a 1 s session and each test joins as few groups as it can; reading back from
Kafka uses a group-less consumer.  Topics and groups are unique per test: the broker
lives for the whole session.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from csfabric.kernel import CloudEvent, TransientError, make_event, parse_event
from csfabric.kernel._tracing import get_tracer, inject_headers, setup_tracing
from csfabric.kernel.bus import Bus, DeadLetter, dlq_subject
from csfabric.kernel.kafka import KafkaBridgeSettings, KafkaToNats, NatsToKafka, record_key
from nats.js.api import RawStreamMsg
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.servers import NatsServerProcess

pytestmark = pytest.mark.integration

SERVICE = "kafka-test"


def bridge_settings(kafka_broker: str, **overrides: Any) -> KafkaBridgeSettings:
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "bootstrap": kafka_broker,
        "topic_in": f"in-{tag}",
        "group_id": f"group-{tag}",
        "topic_out": f"out-{tag}",
        "durable_out": f"out-{tag}",
        "session_timeout_ms": 1000,
        "heartbeat_interval_ms": 300,
        "max_records": 50,
        # The tests produce before the bridge's group exists; the default is "latest".
        "offset_reset": "earliest",
    }
    return KafkaBridgeSettings(**(values | overrides))


@pytest_asyncio.fixture
async def bus(nats_server: NatsServerProcess) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server.url, service=SERVICE)
    try:
        yield bus
    finally:
        await bus.close()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing("test-kafka-bridge", exporter=exporter)
    return exporter


async def eventually(condition: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def events(tag: str, first: int, count: int) -> list[CloudEvent]:
    """Lifecycle events over 20 resources, one in ten with no subject (keyed by type)."""
    return [
        make_event(
            type="environment.created",
            source="/tests/kafka",
            id=f"{tag}-{i}",
            subject=f"ci-{i % 20}" if i % 10 else None,
            data={"n": i},
        )
        for i in range(first, first + count)
    ]


async def produce(
    kafka_broker: str, topic: str, records: list[tuple[bytes | None, bytes | None]]
) -> None:
    """Send ``(key, value)`` records, each carrying the traceparent of one test span."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker, acks="all")
    await producer.start()
    try:
        with get_tracer(__name__).start_as_current_span("test produce"):
            headers = [(k, v.encode()) for k, v in inject_headers({}).items()]
            sends = [
                await producer.send(topic, value, key=key, headers=headers)
                for key, value in records
            ]
            await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def produce_events(kafka_broker: str, topic: str, batch: list[CloudEvent]) -> None:
    await produce(kafka_broker, topic, [(record_key(e), e.to_json()) for e in batch])


async def read_topic(kafka_broker: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_broker, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            records += [record for part in batch.values() for record in part]
    finally:
        await consumer.stop()
    return records


async def stream_messages(bus: Bus, stream: str) -> list[RawStreamMsg]:
    state = (await bus.js.stream_info(stream)).state
    if not state.messages:
        return []
    return [await bus.js.get_msg(stream, seq) for seq in range(state.first_seq, state.last_seq + 1)]


async def stored(bus: Bus, stream: str = "CSFABRIC_EVENTS") -> int:
    return int((await bus.js.stream_info(stream)).state.messages)


async def test_round_trip_kafka_to_jetstream_to_kafka(
    kafka_broker: str, bus: Bus, spans: InMemorySpanExporter
) -> None:
    settings = bridge_settings(kafka_broker)
    sent = events(settings.group_id, 0, 200)
    await produce_events(kafka_broker, settings.topic_in, sent)
    (produced,) = [s for s in spans.get_finished_spans() if s.name == "test produce"]
    trace_id = produced.context.trace_id

    bridge_in = KafkaToNats(bus, settings)
    await bridge_in.start()
    try:
        await eventually(lambda: bridge_in.bridged >= 200)
    finally:
        await bridge_in.stop()
    assert (bridge_in.bridged, bridge_in.duplicates, bridge_in.dead_lettered) == (200, 0, 0)

    messages = await stream_messages(bus, "CSFABRIC_EVENTS")
    assert len(messages) == 200
    by_id = {m.headers["Nats-Msg-Id"]: m for m in messages if m.headers}
    assert set(by_id) == {e.id for e in sent}
    for message in messages:
        assert message.subject == "csfabric.lifecycle.environment.created"
        event = parse_event(message.data or b"")
        # The Kafka record's traceparent header parented the bridge's span.
        assert event.trace_id == format(trace_id, "032x")
    processed = [s for s in spans.get_finished_spans() if s.name.endswith(" process")]
    assert sum(s.context.trace_id == trace_id for s in processed) >= 200

    bridge_out = NatsToKafka(bus, settings)
    await bridge_out.start()
    try:
        await eventually(lambda: bridge_out.sent >= 200)
    finally:
        await bridge_out.stop()
    assert bridge_out.dead_lettered == 0

    records = await read_topic(kafka_broker, settings.topic_out, 200)
    assert len(records) == 200
    expected = {e.id: e for e in sent}
    assert {parse_event(r.value).id for r in records} == set(expected)
    for record in records:
        event = parse_event(record.value)
        assert record.key == (event.subject or "csfabric.lifecycle.environment.created").encode()
        headers = dict(record.headers)
        assert headers["ce_id"] == event.id.encode()
        assert headers["ce_type"] == b"environment.created"
        assert headers["content-type"].startswith(b"application/cloudevents+json")
        traceparent = headers["traceparent"].decode()
        assert traceparent.split("-")[1] == format(trace_id, "032x")
        assert event.data == expected[event.id].data


async def test_restart_loses_nothing_and_stores_nothing_twice(
    kafka_broker: str, bus: Bus, spans: InMemorySpanExporter
) -> None:
    settings = bridge_settings(kafka_broker, max_records=10)
    tag = settings.group_id
    await produce_events(kafka_broker, settings.topic_in, events(tag, 0, 100))

    first = KafkaToNats(bus, settings)
    await first.start()
    commits = 0
    real_commit = first._consumer.commit

    async def dies_before_committing(offsets: Any) -> None:
        # After two good commits the process "dies" between publishing and committing:
        # its later batches are in JetStream but Kafka does not know.
        nonlocal commits
        commits += 1
        if commits <= 2:
            await real_commit(offsets)

    first._consumer.commit = dies_before_committing
    try:
        await eventually(lambda: first.bridged >= 60)
    finally:
        await first.stop()
    assert first.duplicates == 0
    assert commits > 2, "the crash window was never exercised"

    await produce_events(kafka_broker, settings.topic_in, events(tag, 100, 100))
    second = KafkaToNats(bus, settings)
    await second.start()
    try:
        await eventually(lambda: second.bridged - second.duplicates == 200 - first.bridged)
        await asyncio.sleep(1.0)  # anything still arriving would be a duplicate or a loss
    finally:
        await second.stop()

    # Read twice, stored once: the redelivered records were dropped by Nats-Msg-Id.
    assert second.duplicates > 0
    messages = await stream_messages(bus, "CSFABRIC_EVENTS")
    ids = [parse_event(m.data or b"").id for m in messages]
    assert len(ids) == len(set(ids)) == 200
    assert set(ids) == {f"{tag}-{i}" for i in range(200)}


async def test_malformed_records_are_dead_lettered_and_the_bridge_goes_on(
    kafka_broker: str, bus: Bus, spans: InMemorySpanExporter
) -> None:
    settings = bridge_settings(kafka_broker)
    good = events(settings.group_id, 0, 3)
    missing_id = b'{"specversion":"1.0","source":"/x","type":"environment.created"}'
    too_big = make_event(type="environment.created", source="/x", id="big", data="x" * 2000)
    bad = {
        b"not json": "not JSON",
        b"": "empty",
        missing_id: "id: required attribute is missing",
        too_big.to_json(): "over the 1024-byte limit",
    }
    # One partition (one key) so the good events interleave with the bad ones in order.
    records: list[tuple[bytes | None, bytes | None]] = [(b"k", good[0].to_json())]
    records += [(b"k", value) for value in bad]
    records += [(b"k", good[1].to_json()), (b"k", None), (b"k", good[2].to_json())]
    await produce(kafka_broker, settings.topic_in, records)
    (produced,) = [s for s in spans.get_finished_spans() if s.name == "test produce"]

    bridge = KafkaToNats(bus, settings, max_event_bytes=1024)
    await bridge.start()
    try:
        await eventually(lambda: bridge.bridged + bridge.dead_lettered >= len(records))
    finally:
        await bridge.stop()
    assert (bridge.bridged, bridge.dead_lettered) == (3, 5)
    assert await stored(bus) == 3

    dead = await stream_messages(bus, "CSFABRIC_DLQ")
    assert {m.subject for m in dead} == {dlq_subject(SERVICE)}
    # Dead letters stay in the trace of the record that caused them.
    trace_id = format(produced.context.trace_id, "032x")
    assert {(m.headers or {})["traceparent"].split("-")[1] for m in dead} == {trace_id}
    letters = [DeadLetter.from_message(m.data or b"", m.headers or {}) for m in dead]
    assert len(letters) == 5
    for letter in letters:
        assert letter.subject.startswith(f"kafka:{settings.topic_in}/")
        assert (letter.service, letter.error, letter.deliveries) == (
            SERVICE,
            "EnvelopeError",
            1,
        )
        assert letter.stream is None
    by_original = {letter.original: letter.reason for letter in letters}
    for value, reason in bad.items():
        assert reason in by_original[value]
    # The tombstone (no value) and the empty record both arrive as empty originals.
    assert sum(letter.original == b"" for letter in letters) == 2


async def test_raw_mode_exports_audit_records_unchanged(kafka_broker: str, bus: Bus) -> None:
    settings = bridge_settings(
        kafka_broker, subject_out="csfabric.audit.>", stream_out="CSFABRIC_AUDIT", raw_out=True
    )
    payloads = [f'{{"n":{i},"decision":"no action"}}'.encode() for i in range(20)]
    for i, payload in enumerate(payloads):
        await bus.publish(f"csfabric.audit.svc{i % 2}", payload, msg_id=f"audit-{i}")

    bridge = NatsToKafka(bus, settings)
    await bridge.start()
    try:
        await eventually(lambda: bridge.sent >= 20)
    finally:
        await bridge.stop()

    records = await read_topic(kafka_broker, settings.topic_out, 20)
    assert sorted(r.value for r in records) == sorted(payloads)
    for record in records:
        headers = dict(record.headers)
        assert record.key == headers["nats_subject"]
        n = int(record.value.split(b":")[1].split(b",")[0])
        assert record.key == f"csfabric.audit.svc{n % 2}".encode()
        assert headers["nats_msg_id"] == f"audit-{n}".encode()
        assert int(headers["nats_stream_seq"]) == n + 1


async def test_failed_publishes_are_retried_in_order_and_nothing_is_skipped(
    kafka_broker: str, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = bridge_settings(kafka_broker, max_records=20)
    sent = events(settings.group_id, 0, 60)
    await produce_events(kafka_broker, settings.topic_in, sent)

    real_publish = bus.publish_event
    failed: set[str] = set()

    async def flaky_publish(event: CloudEvent, subject: str | None = None) -> Any:
        # Every seventh event fails once, as if JetStream were away past the bus's retries.
        if int(event.id.rsplit("-", 1)[1]) % 7 == 3 and event.id not in failed:
            failed.add(event.id)
            raise TransientError("NATS unavailable")
        return await real_publish(event, subject)

    monkeypatch.setattr(bus, "publish_event", flaky_publish)
    bridge = KafkaToNats(bus, settings, retry_pause=0.01)
    running = asyncio.create_task(bridge.run())
    try:
        await eventually(lambda: bridge.bridged >= 60)
        await asyncio.sleep(0.5)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    assert len(failed) == 9
    assert (bridge.bridged, bridge.duplicates) == (60, 0)
    messages = await stream_messages(bus, "CSFABRIC_EVENTS")
    stored_events = [parse_event(m.data or b"") for m in messages]
    assert sorted(e.id for e in stored_events) == sorted(e.id for e in sent)
    # Per resource (one key, one partition) the order of the topic survived the retries.
    for resource in {e.subject for e in sent}:
        order = [int(e.id.rsplit("-", 1)[1]) for e in stored_events if e.subject == resource]
        assert order == sorted(order)
