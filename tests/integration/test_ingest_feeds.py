"""Ingest's AMQP and Kafka feeds against real RabbitMQ, tansu (Kafka) and nats-server.

Events are built with :mod:`csfabric.cloudstack._native` and published exactly as CloudStack
does (the simulator's sinks: AMQP text/plain persistent with the routing key; Kafka value =
body, key = resource uuid or null).  Exchanges, queues, topics and groups are unique per
test: the brokers outlive the tests.  Kafka feeds use a 1 s session, since tansu lets a
group settle only after about half of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from csfabric.cloudstack._native import (
    ACTION_STATUSES,
    NativeEvent,
    action_event,
    alert_event,
    parse_event_datetime,
    state_event,
    usage_event,
)
from csfabric.cloudstack.simulator import KafkaSink, RabbitSink
from csfabric.ingest.feeds.amqp import start_amqp
from csfabric.ingest.feeds.kafka import start_kafka
from csfabric.ingest.handlers import Pipeline
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel import Auditor, FabricSettings, RealClock, parse_event
from csfabric.kernel._ops import Metrics, OpsServer
from csfabric.kernel.bus import Bus, DeadLetter, dlq_subject
from csfabric.kernel.policy import ActionGate, PolicyWatcher
from csfabric.kernel.service import ServiceContext
from nats.js.api import RawStreamMsg

from tests.servers import NatsServerProcess

pytestmark = pytest.mark.integration

TZ = ZoneInfo("Europe/Berlin")
T0 = datetime(2024, 11, 28, 8, 15, 0, tzinfo=UTC)
USER = str(uuid.uuid5(uuid.NAMESPACE_URL, "user/alice"))
ACCOUNT = str(uuid.uuid5(uuid.NAMESPACE_URL, "account/alice"))
ZONE = str(uuid.uuid5(uuid.NAMESPACE_URL, "zone/z1"))
POD = str(uuid.uuid5(uuid.NAMESPACE_URL, "pod/p1"))
VM = str(uuid.uuid5(uuid.NAMESPACE_URL, "vm/web-01"))
SNAP = str(uuid.uuid5(uuid.NAMESPACE_URL, "snapshot/web-01"))
EVENTS = "CSFABRIC_EVENTS"
DLQ = "CSFABRIC_DLQ"
SESSION_MS = 1000


# -- samples -------------------------------------------------------------------------


def samples() -> list[NativeEvent]:
    """One of each kind CloudStack publishes; all distinct, so each is stored once."""
    when = T0
    vm_create = [
        action_event(
            "VM.CREATE",
            status,
            f"deploying Vm. Vm Id: {VM}",
            user=USER,
            account=ACCOUNT,
            entity="VirtualMachine",
            entity_uuid=VM,
            when=when + timedelta(seconds=i),
            tz=TZ,
            related={"DataCenter": ZONE},
        )
        for i, status in enumerate(ACTION_STATUSES)
    ]
    failed = action_event(
        "SNAPSHOT.COPY",
        "Completed",
        f"Copying snapshot ID: {SNAP} failed <err=quota & 'x'>",
        user=USER,
        account=ACCOUNT,
        entity="Snapshot",
        entity_uuid=SNAP,
        when=when + timedelta(seconds=10),
        tz=TZ,
    )
    usage = usage_event(
        "VM.CREATE",
        zone=ZONE,
        resource_class="com.cloud.vm.VirtualMachine",
        resource_uuid=VM,
        account=ACCOUNT,
        when=when + timedelta(seconds=11),
        tz=TZ,
    )
    alert = alert_event(
        "ALERT.COMPUTE.HOST",
        zone_uuid=ZONE,
        pod_uuid=POD,
        subject="Host is down, name: kvm-01 (id:3), availability zone: z1, pod: p1",
        body="",
        when=when + timedelta(seconds=12),
        tz=TZ,
    )
    states = [
        state_event(
            "VirtualMachine",
            VM,
            "StopRequested",
            "Running",
            "Stopping",
            when=when + timedelta(seconds=13),
            tz=TZ,
            status=status,
            account=ACCOUNT,
        )
        for status in ("preStateTransitionEvent", "postStateTransitionEvent")
    ]
    return [*vm_create, failed, usage, alert, *states]


def distinct_events(tag: str, count: int) -> list[NativeEvent]:
    """``count`` VM.CREATE Completed events over distinct VMs."""
    return [
        action_event(
            "VM.CREATE",
            "Completed",
            f"Successfully completed deploying Vm. {tag} #{i}",
            user=USER,
            account=ACCOUNT,
            entity="VirtualMachine",
            entity_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"vm/{tag}/{i}")),
            when=T0 + timedelta(seconds=i),
            tz=TZ,
        )
        for i in range(count)
    ]


FAMILY = {
    "ActionEvent": "action",
    "UsageEvent": "usage",
    "AlertEvent": "alert",
    "ResourceStateEvent": "state",
}


def expected_types(event: NativeEvent, transports: tuple[str, ...]) -> set[str]:
    """The FSM event name exists only in the AMQP routing key; Kafka says ``Transition``."""
    family = FAMILY[event.category]
    if family != "state":
        return {f"cloudstack.{family}.{event.event_type}"}
    fsm = {"amqp": event.event_type, "kafka": "Transition"}
    return {f"cloudstack.state.{event.resource_type}.{fsm[t]}" for t in transports}


def expected_subject(event: NativeEvent) -> str:
    field = {
        "ActionEvent": "entityuuid",
        "UsageEvent": "id",
        "AlertEvent": "dataCenterId",
        "ResourceStateEvent": "id",
    }[event.category]
    return event.body[field]


# -- harness -------------------------------------------------------------------------


def ingest_settings(tmp_path: Path, **values: Any) -> IngestSettings:
    tag = uuid.uuid4().hex[:10]
    defaults: dict[str, Any] = {
        "cloud_name": "test-cloud",
        "amqp_url": None,
        "amqp_exchange": f"cs-events-{tag}",
        "amqp_queue": f"csfabric-ingest-{tag}",
        "kafka_bootstrap": None,
        "kafka_topic": f"cloudstack-{tag}",
        "kafka_group": f"csfabric-ingest-{tag}",
        "poll_interval": 0,
    }
    return IngestSettings(**(defaults | values))


def make_context(bus: Bus) -> ServiceContext:
    """What run_service hands a setup, without an ops port or a started policy watcher."""
    metrics = Metrics("ingest")
    policies = PolicyWatcher(bus)
    return ServiceContext(
        "ingest",
        FabricSettings(),
        bus.clock,
        bus,
        metrics,
        Auditor(bus),
        OpsServer(metrics, host="127.0.0.1", port=0),
        policies,
        ActionGate(policies),
    )


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No dev.json of a running `csfabric dev` may leak into these settings.
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path / "state"))


@pytest_asyncio.fixture
async def bus(nats_server: NatsServerProcess) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server.url, service="ingest", clock=RealClock())
    try:
        yield bus
    finally:
        await bus.close()


@pytest_asyncio.fixture
async def pipeline(bus: Bus, tmp_path: Path) -> Pipeline:
    return Pipeline(make_context(bus), ingest_settings(tmp_path))


@contextlib.asynccontextmanager
async def rabbit_cleanup(url: str, settings: IngestSettings) -> AsyncIterator[None]:
    """Delete the test's durable queue and exchange afterwards: RabbitMQ outlives tests."""
    try:
        yield
    finally:
        conn = await aio_pika.connect(url)
        try:
            channel = await conn.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(settings.amqp_queue)
            channel = await conn.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(settings.amqp_exchange)
        finally:
            await conn.close()


async def eventually(condition: Callable[[], Any], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def stream_count(bus: Bus, stream: str = EVENTS) -> int:
    info = await bus.js.stream_info(stream)
    return int(info.state.messages)


async def stored(bus: Bus, stream: str = EVENTS) -> list[RawStreamMsg]:
    info = await bus.js.stream_info(stream)
    first, last = info.state.first_seq, info.state.last_seq
    if not info.state.messages:
        return []
    return [await bus.js.get_msg(stream, seq) for seq in range(first, last + 1)]


async def publish_amqp(url: str, exchange: str, events: list[NativeEvent]) -> None:
    sink = RabbitSink(url, exchange)
    try:
        for event in events:
            await sink.emit(event)
    finally:
        await sink.close()


async def publish_kafka(bootstrap: str, topic: str, events: list[NativeEvent]) -> None:
    sink = KafkaSink(bootstrap, topic)
    try:
        for event in events:
            await sink.emit(event)
    finally:
        await sink.close()


def check_stored(messages: list[RawStreamMsg], events: list[NativeEvent], *transports: str) -> None:
    """Each native event stored once, on its subject, with CloudStack's body untouched."""
    assert len(messages) == len(events)
    by_native = {}
    for msg in messages:
        ce = parse_event(msg.data or b"")
        assert msg.subject == f"csfabric.{ce.type}"
        assert (msg.headers or {}).get("Nats-Msg-Id") == ce.id
        by_native[tuple(sorted(ce.data["native"].items()))] = ce
    for event in events:
        ce = by_native[tuple(sorted(event.body.items()))]
        assert ce.type in expected_types(event, transports)
        assert ce.subject == expected_subject(event)
        assert ce.source == "test-cloud"
        assert ce.time == parse_event_datetime(event.body["eventDateTime"])
        assert ce.data["native"] == event.body
        assert ce.data["category"] == FAMILY[event.category]


# -- tests ---------------------------------------------------------------------------


async def test_amqp_feed_stores_every_kind(
    rabbitmq_url: str, bus: Bus, tmp_path: Path, pipeline: Pipeline
) -> None:
    settings = ingest_settings(tmp_path, amqp_url=rabbitmq_url)
    events = samples()
    async with rabbit_cleanup(rabbitmq_url, settings):
        feed = await start_amqp(pipeline, settings)
        try:
            await publish_amqp(rabbitmq_url, settings.amqp_exchange, events)
            await eventually(lambda: _equals(stream_count(bus), len(events)))
            await eventually(lambda: _true(feed.acked == len(events)))
        finally:
            await feed.stop()
    messages = await stored(bus)
    check_stored(messages, events, "amqp")
    subjects = {m.subject for m in messages}
    assert "csfabric.cloudstack.action.VM.CREATE" in subjects
    assert "csfabric.cloudstack.alert.ALERT.COMPUTE.HOST" in subjects
    assert "csfabric.cloudstack.state.VirtualMachine.StopRequested" in subjects
    assert await _dlq_count(bus) == 0


async def test_amqp_bindings_filter_what_is_ingested(
    rabbitmq_url: str, bus: Bus, tmp_path: Path, pipeline: Pipeline
) -> None:
    settings = ingest_settings(
        tmp_path, amqp_url=rabbitmq_url, amqp_bindings="*.ActionEvent.#, *.AlertEvent.#"
    )
    events = samples()
    wanted = [e for e in events if e.category in ("ActionEvent", "AlertEvent")]
    async with rabbit_cleanup(rabbitmq_url, settings):
        feed = await start_amqp(pipeline, settings)
        try:
            await publish_amqp(rabbitmq_url, settings.amqp_exchange, events)
            await eventually(lambda: _true(feed.acked == len(wanted)))
            await asyncio.sleep(0.3)  # anything unwanted would have arrived by now
        finally:
            await feed.stop()
    check_stored(await stored(bus), wanted, "amqp")


async def test_kafka_feed_stores_every_kind(
    kafka_broker: str, bus: Bus, tmp_path: Path, pipeline: Pipeline
) -> None:
    settings = ingest_settings(
        tmp_path, kafka_bootstrap=kafka_broker, kafka_offset_reset="earliest"
    )
    events = samples()
    # Published before the group exists: an "earliest" group starts at the first offset.
    await publish_kafka(kafka_broker, settings.kafka_topic, events)
    feed = await start_kafka(pipeline, settings, session_timeout_ms=SESSION_MS)
    try:
        await eventually(lambda: _equals(stream_count(bus), len(events)))
        await eventually(lambda: _true(feed.stored == len(events)))
    finally:
        await feed.stop()
    messages = await stored(bus)
    check_stored(messages, events, "kafka")
    assert "csfabric.cloudstack.state.VirtualMachine.Transition" in {m.subject for m in messages}
    assert await _dlq_count(bus) == 0


async def test_same_event_via_amqp_and_kafka_is_stored_once(
    rabbitmq_url: str, kafka_broker: str, bus: Bus, tmp_path: Path, pipeline: Pipeline
) -> None:
    # "earliest": the records may land before the new group has its partitions.
    settings = ingest_settings(
        tmp_path,
        amqp_url=rabbitmq_url,
        kafka_bootstrap=kafka_broker,
        kafka_offset_reset="earliest",
    )
    events = samples()
    async with rabbit_cleanup(rabbitmq_url, settings):
        amqp = await start_amqp(pipeline, settings)
        kafka = await start_kafka(pipeline, settings, session_timeout_ms=SESSION_MS)
        try:
            await publish_amqp(rabbitmq_url, settings.amqp_exchange, events)
            await publish_kafka(kafka_broker, settings.kafka_topic, events)
            await eventually(lambda: _true(amqp.acked == len(events)))
            await eventually(lambda: _true(kafka.stored == len(events)))
        finally:
            await asyncio.gather(amqp.stop(), kafka.stop())
    messages = await stored(bus)
    check_stored(messages, events, "amqp", "kafka")
    assert len({parse_event(m.data or b"").id for m in messages}) == len(events)


@pytest.mark.parametrize("transport", ["amqp", "kafka"])
async def test_malformed_body_is_dead_lettered_and_the_feed_keeps_going(
    transport: str,
    rabbitmq_url: str,
    kafka_broker: str,
    bus: Bus,
    tmp_path: Path,
    pipeline: Pipeline,
) -> None:
    settings = ingest_settings(
        tmp_path,
        amqp_url=rabbitmq_url,
        kafka_bootstrap=kafka_broker,
        kafka_offset_reset="earliest",
    )
    bad = [b"this is not json", b'{"event": "VM.CREATE", "eventDateTime": "yesterday"}']
    good = distinct_events(uuid.uuid4().hex, 3)
    async with rabbit_cleanup(rabbitmq_url, settings):
        if transport == "amqp":
            feed: Any = await start_amqp(pipeline, settings)
            conn = await aio_pika.connect(rabbitmq_url)
            try:
                channel = await conn.channel()
                exchange = await channel.get_exchange(settings.amqp_exchange)
                for body in bad:
                    message = aio_pika.Message(
                        body,
                        content_type="text/plain",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    )
                    await exchange.publish(
                        message, routing_key="management-server.ActionEvent.VM-CREATE.*.*"
                    )
            finally:
                await conn.close()
            await publish_amqp(rabbitmq_url, settings.amqp_exchange, good)
            done: Callable[[], bool] = lambda: feed.acked == len(bad) + len(good)  # noqa: E731
        else:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_broker, acks="all")
            await producer.start()
            try:
                for body in bad:
                    await producer.send_and_wait(settings.kafka_topic, value=body, key=None)
            finally:
                await producer.stop()
            await publish_kafka(kafka_broker, settings.kafka_topic, good)
            feed = await start_kafka(pipeline, settings, session_timeout_ms=SESSION_MS)
            done = lambda: feed.stored == len(bad) + len(good)  # noqa: E731
        try:
            await eventually(lambda: _true(done()))
            await eventually(lambda: _equals(stream_count(bus), len(good)))
        finally:
            await feed.stop()
    check_stored(await stored(bus), good, transport)
    letters = await stored(bus, DLQ)
    assert len(letters) == len(bad)
    assert {m.subject for m in letters} == {dlq_subject("ingest")}
    dead = [DeadLetter.from_message(m.data or b"", m.headers or {}) for m in letters]
    assert sorted(d.original for d in dead) == sorted(bad)
    assert all(d.reason for d in dead)


async def test_amqp_feed_retries_while_nats_is_down(
    rabbitmq_url: str, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    """A failed store is tried again in process; once NATS is back the event is stored."""
    settings = ingest_settings(tmp_path, amqp_url=rabbitmq_url)
    bus = await Bus.connect(nats_server.url, service="ingest", clock=RealClock())
    # Give up on NATS within seconds, not the production ~75 s, so the feed sees failures.
    bus.publish_timeout, bus.publish_attempts = 1.0, 2
    events = distinct_events(uuid.uuid4().hex, 5)
    try:
        pipeline = Pipeline(make_context(bus), settings)
        async with rabbit_cleanup(rabbitmq_url, settings):
            feed = await start_amqp(pipeline, settings, retry_pause=0.2)
            try:
                await nats_server.stop()
                await publish_amqp(rabbitmq_url, settings.amqp_exchange, events)
                await eventually(lambda: _true(feed.retries > 0), within=60.0)
                await nats_server.start()
                await eventually(lambda: _true(feed.acked == len(events)), within=60.0)
            finally:
                await feed.stop()
        check_stored(await stored(bus), events, "amqp")
    finally:
        await bus.close()


async def _dlq_count(bus: Bus) -> int:
    return await stream_count(bus, DLQ)


async def _equals(count: Any, expected: int) -> bool:
    return bool(await count == expected)


async def _true(value: bool) -> bool:
    return value
