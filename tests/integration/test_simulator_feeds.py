"""The simulator's event feeds against real servers: RabbitMQ, tansu (Kafka), an HTTP hook.

Every feed must carry CloudStack's own bytes (see docs/cloudstack-formats.md).
Exchanges and topics are unique per test: the brokers outlive the tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import aiohttp
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from csfabric.cloudstack._native import (
    NativeEvent,
    action_event,
    alert_event,
    state_event,
    usage_event,
)
from csfabric.cloudstack.simulator._feeds import (
    TEST_PAYLOAD,
    EventLog,
    Fanout,
    KafkaSink,
    RabbitSink,
    WebhookSink,
    send_test_delivery,
)

from tests.integration._webhook import Hook
from tests.servers import free_port

TZ = ZoneInfo("Europe/London")
T0 = datetime(2024, 11, 28, 9, 15, 0, tzinfo=UTC)
SECRET = "hook-secret"
USER = str(uuid.uuid5(uuid.NAMESPACE_URL, "user/csfabric"))
ADMIN = str(uuid.uuid5(uuid.NAMESPACE_URL, "account/admin"))
PROJECT_ACCOUNT = str(uuid.uuid5(uuid.NAMESPACE_URL, "account/project-alpha"))
PROJECT = str(uuid.uuid5(uuid.NAMESPACE_URL, "project/project-alpha"))
ZONE = str(uuid.uuid5(uuid.NAMESPACE_URL, "zone/zone-london"))
POD = str(uuid.uuid5(uuid.NAMESPACE_URL, "pod/london-1"))
VM = str(uuid.uuid5(uuid.NAMESPACE_URL, "vm/web-01"))
SNAP = str(uuid.uuid5(uuid.NAMESPACE_URL, "snapshot/web-01-root"))


def act(
    event: str,
    status: str,
    desc: str,
    entity: tuple[str, str],
    account: str = ADMIN,
    **kw: str | dict[str, str],
) -> NativeEvent:
    kind, entity_uuid = entity
    return action_event(
        event, status, desc, user=USER, account=account, entity=kind, entity_uuid=entity_uuid,
        when=T0, tz=TZ, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def scenario() -> list[NativeEvent]:
    """A VM deploy, a snapshot, a project suspension and a host-down alert, in order."""
    vm = ("VirtualMachine", VM)
    related = {"DataCenter": ZONE, "ServiceOffering": str(uuid.uuid4())}
    desc = "deploying Vm <web-01> & friends='x'"
    events = [
        act("VM.CREATE", "Created", desc, vm, related=related),
        act("VM.CREATE", "Started", desc, vm),
    ]
    transitions = [
        ("StartRequested", "Stopped", "Starting"),
        ("OperationSucceeded", "Starting", "Running"),
    ]
    for fsm, old, new in transitions:
        events += [
            state_event("VirtualMachine", VM, fsm, old, new, when=T0, tz=TZ, status=s)
            for s in ("preStateTransitionEvent", "postStateTransitionEvent")
        ]
    done = "Successfully completed"
    subject = "Host is down, name: kvm-01 (id:3), availability zone: zone-london"
    events += [
        usage_event(
            "VM.CREATE", zone=ZONE, resource_class="com.cloud.vm.VirtualMachine",
            resource_uuid=VM, account=ADMIN, when=T0, tz=TZ,
        ),
        act("VM.CREATE", "Completed", f"{done} deploying Vm", vm, related=related),
        act("SNAPSHOT.CREATE", "Completed", f"{done} creating snapshot", ("Snapshot", SNAP)),
        act(
            "PROJECT.SUSPEND", "Completed", f"{done} suspending project", ("Project", PROJECT),
            account=PROJECT_ACCOUNT, project=PROJECT,
        ),
        alert_event(
            "ALERT.COMPUTE.HOST", zone_uuid=ZONE, pod_uuid=POD, subject=subject, body="",
            when=T0, tz=TZ,
        ),
    ]  # fmt: skip
    return events


EXPECTED_KEYS = [
    f"management-server.ActionEvent.VM-CREATE.VirtualMachine.{VM}",
    f"management-server.ActionEvent.VM-CREATE.VirtualMachine.{VM}",
    f"management-server.ResourceStateEvent.StartRequested.VirtualMachine.{VM}",
    f"management-server.ResourceStateEvent.StartRequested.VirtualMachine.{VM}",
    f"management-server.ResourceStateEvent.OperationSucceeded.VirtualMachine.{VM}",
    f"management-server.ResourceStateEvent.OperationSucceeded.VirtualMachine.{VM}",
    f"management-server.UsageEvent.VM-CREATE.com-cloud-vm-VirtualMachine.{VM}",
    f"management-server.ActionEvent.VM-CREATE.VirtualMachine.{VM}",
    f"management-server.ActionEvent.SNAPSHOT-CREATE.Snapshot.{SNAP}",
    f"management-server.ActionEvent.PROJECT-SUSPEND.Project.{PROJECT}",
    "management-server.AlertEvent.ALERT-COMPUTE-HOST.*.*",
]


@pytest_asyncio.fixture
async def closing() -> AsyncIterator[list[Fanout]]:
    """Fanouts to close even when an assertion fails first."""
    fanouts: list[Fanout] = []
    yield fanouts
    for fanout in fanouts:
        await fanout.close(0.1)


@pytest_asyncio.fixture
async def amqp_queue(rabbitmq_url: str) -> AsyncIterator[tuple[str, aio_pika.abc.AbstractQueue]]:
    """A unique exchange name and an exclusive queue bound to it with ``#``."""
    name = f"cloudstack-events-test-{uuid.uuid4().hex[:10]}"
    conn = await aio_pika.connect_robust(rabbitmq_url)
    channel = await conn.channel()
    exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "#")
    try:
        yield name, queue
    finally:
        await exchange.delete()
        await conn.close()


async def drain(
    queue: aio_pika.abc.AbstractQueue, count: int
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    messages: list[aio_pika.abc.AbstractIncomingMessage] = []
    deadline = time.monotonic() + 15
    while len(messages) < count and time.monotonic() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
        else:
            messages.append(message)
    return messages


async def read_topic(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[tuple[bytes | None, bytes]] = []
    try:
        deadline = time.monotonic() + 30
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            records += [(r.key, r.value) for part in batch.values() for r in part if r.value]
    finally:
        await consumer.stop()
    return records


def verify_signature(headers: dict[str, str], body: bytes) -> bool:
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return hmac.compare_digest(headers["X-CS-Signature"], expected)


@pytest.mark.integration
async def test_all_feeds_carry_cloudstack_bytes(
    amqp_queue: tuple[str, aio_pika.abc.AbstractQueue],
    kafka_broker: str,
    rabbitmq_url: str,
    hook: Hook,
    closing: list[Fanout],
) -> None:
    exchange, queue = amqp_queue
    topic = f"cloudstack-{uuid.uuid4().hex[:10]}"
    webhook = WebhookSink(hook.url, SECRET)
    log = EventLog()
    fanout = Fanout(
        [RabbitSink(rabbitmq_url, exchange), KafkaSink(kafka_broker, topic), webhook, log]
    )
    closing.append(fanout)
    events = scenario()
    for event in events:
        await fanout.emit(event)
    assert await fanout.flush(30)
    assert all(s["delivered"] == len(events) for s in fanout.stats().values())

    # RabbitMQ: routing keys, bare bodies, CloudStack's message properties.
    messages = await drain(queue, len(events))
    assert [m.routing_key for m in messages] == EXPECTED_KEYS
    assert [m.body for m in messages] == [e.body_json() for e in events]
    for m in messages:
        assert m.content_type == "text/plain"
        assert m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert not m.headers
        # CloudStack sends no message id; aiormq always stamps a random one (to match
        # basic.return frames), so consumers must never key on it.
        assert m.message_id not in {e.event_id for e in events}
        body = json.loads(m.body)
        assert all(isinstance(v, str) for v in body.values())
        assert ("level" not in body and "id" not in body) or body.get("resource")
    assert b"\\u003cweb-01\\u003e \\u0026 friends\\u003d\\u0027x\\u0027" in messages[0].body
    pre, post = (json.loads(m.body) for m in messages[2:4])
    assert (pre["status"], post["status"]) == (
        "preStateTransitionEvent",
        "postStateTransitionEvent",
    )

    # Kafka: key = resource uuid (None for the alert), value = the same bytes.  Order only
    # holds within a partition, i.e. per key.
    records = await read_topic(kafka_broker, topic, len(events))
    expected = [
        (e.resource_uuid.encode() if e.resource_uuid else None, e.body_json()) for e in events
    ]
    assert sorted(records, key=repr) == sorted(expected, key=repr)
    assert [r for r in records if r[0] == VM.encode()] == expected[:8]
    assert (None, events[-1].body_json()) in records

    # Webhook: ActionEvents only, byte-identical to the AMQP body, signed.
    actions = [e for e in events if e.category == "ActionEvent"]
    assert len(hook.requests) == len(actions) == 5
    amqp_bodies = {m.body for m in messages}
    for (headers, body), event in zip(hook.requests, actions, strict=True):
        assert body == event.body_json()
        assert body in amqp_bodies
        assert headers["X-CS-Event-ID"] == event.event_id
        assert headers["X-CS-Event"] == event.event_type
        assert headers["User-Agent"] == f"CS-Hookshot/{event.account_uuid}"
        assert verify_signature(headers, body)
    assert hook.requests[-1][0]["User-Agent"] == f"CS-Hookshot/{PROJECT_ACCOUNT}"
    assert json.loads(hook.requests[-1][1])["project"] == PROJECT
    assert all(d.success and d.attempts == 1 for d in webhook.deliveries)

    # The event log serves listEvents.
    assert [e.event_id for e in log.list(T0, T0)] == [e.event_id for e in events]
    await fanout.close()


@pytest.mark.integration
async def test_webhook_only_200_counts_and_three_tries(hook: Hook, closing: list[Fanout]) -> None:
    event = scenario()[-2]  # PROJECT.SUSPEND
    sink = WebhookSink(hook.url, SECRET)
    hook.statuses = [201, 204]
    delivery = await sink.deliver(event)
    assert (delivery.success, delivery.attempts, delivery.status) == (True, 3, 200)

    hook.requests.clear()
    hook.statuses = [500, 201, 204, 200]
    fanout = Fanout([sink], backoff_base=0.01)
    closing.append(fanout)
    await fanout.emit(event)
    assert await fanout.flush(10)
    assert len(hook.requests) == 3  # no retries beyond CloudStack's three
    assert sink.deliveries[-1].success is False
    assert sink.deliveries[-1].status == 204
    await fanout.close()


@pytest.mark.integration
async def test_webhook_without_secret_and_timeout(hook: Hook) -> None:
    sink = WebhookSink(hook.url, None, timeout=0.2)
    hook.delay = 0.5
    delivery = await sink.deliver(scenario()[0])
    assert not delivery.success
    assert delivery.attempts == 3
    assert len(hook.requests) == 3
    assert "X-CS-Signature" not in hook.requests[0][0]
    await sink.emit(scenario()[2])  # a state change: never a webhook
    assert len(hook.requests) == 3
    await sink.close()


@pytest.mark.integration
async def test_webhook_test_delivery(hook: Hook) -> None:
    delivery = await send_test_delivery(hook.url, SECRET, account_uuid=ADMIN)
    assert delivery.success
    headers, body = hook.requests[0]
    assert body == TEST_PAYLOAD == b'{ "CloudStack": "works!" }'
    assert headers["X-CS-Event"] == "TEST.WEBHOOK"
    assert headers["User-Agent"] == f"CS-Hookshot/{ADMIN}"
    uuid.UUID(headers["X-CS-Event-ID"])
    assert verify_signature(headers, body)


class _Stuck:
    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.seen: list[NativeEvent] = []

    async def emit(self, event: NativeEvent) -> None:
        await self.release.wait()
        self.seen.append(event)

    async def close(self) -> None:
        return None


class _Flaky:
    def __init__(self, failures: int) -> None:
        self.failures, self.seen = failures, list[NativeEvent]()

    async def emit(self, event: NativeEvent) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        self.seen.append(event)

    async def close(self) -> None:
        return None


async def test_fanout_never_blocks_and_drops_when_full(closing: list[Fanout]) -> None:
    stuck, log = _Stuck(), EventLog()
    fanout = Fanout([stuck, log], queue_size=5)
    closing.append(fanout)
    events = scenario()
    started = time.monotonic()
    for event in events:
        await fanout.emit(event)
        await asyncio.sleep(0)  # let the lanes run between API calls
    assert time.monotonic() - started < 0.5  # the stuck sink never held the caller
    assert await fanout.flush(0.3) is False
    assert len(log.list()) == len(events)
    assert fanout.stats()["0:_Stuck"]["dropped"] == len(events) - 5 - 1  # 1 in flight, 5 queued
    assert fanout.stats()["1:EventLog"]["dropped"] == 0
    stuck.release.set()
    assert await fanout.flush(5)
    assert stuck.seen == events[:6]


async def test_fanout_retries_with_backoff_in_order(closing: list[Fanout]) -> None:
    flaky = _Flaky(failures=3)
    fanout = Fanout([flaky], backoff_base=0.01)
    closing.append(fanout)
    events = scenario()
    for event in events:
        await fanout.emit(event)
    assert await fanout.flush(5)
    assert flaky.seen == events
    assert fanout.stats()["0:_Flaky"] == {"delivered": len(events), "failed": 0, "dropped": 0}


async def test_fanout_gives_up_after_max_attempts(closing: list[Fanout]) -> None:
    flaky = _Flaky(failures=100)
    fanout = Fanout([flaky], backoff_base=0.001, max_attempts=3)
    closing.append(fanout)
    await fanout.emit(scenario()[0])
    assert await fanout.flush(5)
    assert fanout.stats()["0:_Flaky"] == {"delivered": 0, "failed": 1, "dropped": 0}
    assert flaky.failures == 97
    await fanout.close()


@pytest.mark.integration
async def test_unreachable_rabbit_does_not_block(closing: list[Fanout]) -> None:
    port = free_port()  # nothing listens here
    fanout = Fanout(
        [RabbitSink(f"amqp://guest:guest@127.0.0.1:{port}/")], backoff_base=0.01, max_attempts=2
    )
    closing.append(fanout)
    started = time.monotonic()
    await fanout.emit(scenario()[0])
    assert time.monotonic() - started < 0.1
    assert await fanout.flush(10)
    assert fanout.stats()["0:RabbitSink"]["failed"] == 1
    await fanout.close()


def test_event_log_filters_by_time() -> None:
    log = EventLog()
    make: Callable[[int], NativeEvent] = lambda m: alert_event(  # noqa: E731
        "ALERT.COMPUTE.HOST",
        zone_uuid=ZONE,
        pod_uuid=None,
        subject=str(m),
        body="",
        when=T0.replace(minute=m),
        tz=TZ,
    )
    for minute in (30, 10, 20):
        asyncio.run(log.emit(make(minute)))
    assert [e.body["subject"] for e in log.list()] == ["10", "20", "30"]
    assert [e.body["subject"] for e in log.list(T0.replace(minute=20))] == ["20", "30"]
    assert [e.body["subject"] for e in log.list(None, T0.replace(minute=20))] == ["10", "20"]
    first = log.list()[0]
    assert log.get(first.event_id) is first


@pytest.mark.integration
async def test_simulator_deploy_reaches_rabbitmq(
    amqp_queue: tuple[str, aio_pika.abc.AbstractQueue], rabbitmq_url: str, hook: Hook
) -> None:
    """End to end: deployVirtualMachine over HTTP → the simulator's Fanout → RabbitMQ."""
    from csfabric.cloudstack.simulator import Simulator, World, signature

    exchange, queue = amqp_queue
    world = World.demo(0)
    fanout = Fanout([RabbitSink(rabbitmq_url, exchange), WebhookSink(hook.url, SECRET)])
    sim = Simulator(world, sinks=[fanout], job_latency=0.05)
    url = await sim.start("127.0.0.1", free_port())
    keys = world.keys()["csfabric"]

    async def call(session: aiohttp.ClientSession, command: str, **params: str) -> Any:
        query = {"command": command, "response": "json", "apikey": keys["apikey"], **params}
        query["signature"] = signature(query, keys["secretkey"])
        async with session.get(url, params=query) as resp:
            return (await resp.json())[f"{command.lower()}response"]

    try:
        async with aiohttp.ClientSession() as session:
            zone = world.zone_named("zone-london").id
            started = await call(
                session, "deployVirtualMachine", zoneid=zone,
                serviceofferingid=world.service_offering_id, templateid=world.template_id,
            )  # fmt: skip
            vm = started["id"]
            deadline = time.monotonic() + 10
            while (job := await call(session, "queryAsyncJobResult", jobid=started["jobid"]))[
                "jobstatus"
            ] == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert job["jobstatus"] == 1
        assert await fanout.flush(10)
        messages = await drain(queue, 9)
    finally:
        await sim.stop()
        await fanout.close(1)

    keys_seen = [m.routing_key for m in messages]
    action_key = f"management-server.ActionEvent.VM-CREATE.VirtualMachine.{vm}"
    assert keys_seen.count(action_key) == 4
    assert f"management-server.UsageEvent.VM-CREATE.com-cloud-vm-VirtualMachine.{vm}" in keys_seen
    state_key = f"management-server.ResourceStateEvent.OperationSucceeded.VirtualMachine.{vm}"
    assert keys_seen.count(state_key) == 2
    bodies = [json.loads(m.body) for m in messages]
    assert all(isinstance(v, str) for b in bodies for v in b.values())
    statuses = [b["status"] for b in bodies if b.get("event") == "VM.CREATE" and "user" in b]
    assert statuses == ["Created", "Scheduled", "Started", "Completed"]
    # The webhook got the same four ActionEvents, byte for byte, with listEvents' ids.
    assert [body for _, body in hook.requests] == [
        m.body for m in messages if m.routing_key == action_key
    ]
    assert all(h["X-CS-Event-ID"] in world_event_ids(world) for h, _ in hook.requests)


def world_event_ids(world: Any) -> set[str]:
    return {record.id for record in world.events}
