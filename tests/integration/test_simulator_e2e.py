"""The simulator end to end: signed API calls and an admin alert → RabbitMQ, Kafka, webhook.

One seeded demo world, a real clock and the machine's brokers.  The fabric's own API user
(``csfabric``) deploys a VM, snapshots its root volume and suspends a project over HTTP;
then ``POST /admin/alerts`` raises CloudStack's only host-down signal.  Every feed must carry
the same CloudStack bytes, and ``listEvents`` must know every webhook's ``X-CS-Event-ID``.
Exchange and topic names are unique per run: the brokers outlive the tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiohttp
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack._native import NativeEvent, action_event
from csfabric.cloudstack.simulator import (
    Fanout,
    KafkaSink,
    RabbitSink,
    Simulator,
    WebhookSink,
    World,
)
from csfabric.cloudstack.simulator._admin import ADMIN_HEADER, ALERTS_PATH
from csfabric.kernel import RealClock

from tests.integration._webhook import Hook
from tests.servers import free_port

pytestmark = pytest.mark.integration

SEED = 11
SECRET = "e2e-hook-secret"
DEADLINE = 30.0  # seconds any feed may take to show everything
HOST_DOWN_KEY = "management-server.AlertEvent.ALERT-COMPUTE-HOST.*.*"


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = DEADLINE) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)  # poll interval


@dataclass
class Rig:
    sim: Simulator
    fanout: Fanout
    queue: aio_pika.abc.AbstractQueue
    topic: str
    hook: Hook

    @property
    def admin_url(self) -> str:
        return self.sim.url.removesuffix("/client/api") + ALERTS_PATH

    def client(self) -> CloudStackClient:
        keys = self.sim.keys()["csfabric"]
        settings = CloudStackSettings(
            endpoint=self.sim.url,
            key=keys["apikey"],
            secret=keys["secretkey"],
            poll_interval=0.02,
            job_timeout=DEADLINE,
            rate_limit_per_second=None,
        )
        return CloudStackClient(settings, clock=self.sim.clock)


@pytest_asyncio.fixture
async def rig(rabbitmq_url: str, kafka_broker: str, hook: Hook) -> AsyncIterator[Rig]:
    exchange_name = f"cloudstack-events-e2e-{uuid.uuid4().hex[:10]}"
    topic = f"cloudstack-e2e-{uuid.uuid4().hex[:10]}"
    conn = await aio_pika.connect_robust(rabbitmq_url)
    channel = await conn.channel()
    exchange = await channel.declare_exchange(
        exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "#")
    fanout = Fanout(
        [
            RabbitSink(rabbitmq_url, exchange_name),
            KafkaSink(kafka_broker, topic),
            WebhookSink(hook.url, SECRET),
        ]
    )
    sim = Simulator(World.demo(SEED), clock=RealClock(), sinks=[fanout], job_latency=0.05)
    await sim.start("127.0.0.1", free_port())
    try:
        yield Rig(sim, fanout, queue, topic, hook)
    finally:
        await sim.stop()  # closes the fanout and its sinks
        await exchange.delete()
        await conn.close()


async def drain(queue: aio_pika.abc.AbstractQueue, count: int) -> list[Any]:
    messages: list[Any] = []

    async def got_all() -> bool:
        message = await queue.get(no_ack=True, fail=False, timeout=5)
        if message is not None:
            messages.append(message)
        return len(messages) >= count

    await until(got_all, f"{count} AMQP messages")
    return messages


async def read_topic(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[tuple[bytes | None, bytes]] = []

    async def got_all() -> bool:
        batch = await consumer.getmany(timeout_ms=500)
        records.extend((r.key, r.value) for part in batch.values() for r in part if r.value)
        return len(records) >= count

    try:
        await until(got_all, f"{count} Kafka records")
    finally:
        await consumer.stop()
    return records


async def raise_alert(url: str, key: str, spec: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=spec, headers={ADMIN_HEADER: key}) as resp,
    ):
        return resp.status, await resp.json()


def signed_by(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


async def test_signed_calls_and_host_down_reach_every_feed(rig: Rig, kafka_broker: str) -> None:
    sim, world = rig.sim, rig.sim.world
    fabric_user = world.fabric_user.id
    london = world.zone_named("zone-london")
    manchester = world.zone_named("zone-manchester")

    async with rig.client() as client:
        deployed = await client.job(
            "deployVirtualMachine", zoneid=london.id,
            serviceofferingid=world.service_offering_id, templateid=world.template_id,
        )  # fmt: skip
        assert deployed.ok, deployed.error
        vm = deployed.resource_id
        assert vm is not None
        volumes = await client.list("listVolumes", virtualmachineid=vm, listall="true")
        root = next(v["id"] for v in volumes if v["type"] == "ROOT")
        snapped = await client.job("createSnapshot", volumeid=root)
        assert snapped.ok, snapped.error
        snap = snapped.resource_id or snapped.result["snapshot"]["id"]
        projects = await client.list("listProjects", name="project-alpha", listall="true")
        project = projects[0]["id"]
        suspended = await client.job("suspendProject", id=project)
        assert suspended.ok, suspended.error

        # The admin endpoint: wrong key refused, unknown zone refused, then a host-down.
        admin_key = sim.admin_secret()
        assert (await raise_alert(rig.admin_url, "wrong", {}))[0] == 401
        assert (await raise_alert(rig.admin_url, admin_key, {"zone": "nowhere"}))[0] == 400
        status, alert = await raise_alert(
            rig.admin_url, admin_key,
            {"event": "ALERT.COMPUTE.HOST", "zone": "zone-manchester", "host": "kvm-07"},
        )  # fmt: skip
        assert status == 200, alert
        listed = await client.list("listEvents", listall="true")

    assert alert["routing_key"] == HOST_DOWN_KEY
    assert alert["dataCenterId"] == manchester.id
    uuid.UUID(alert["podId"])  # a pod uuid, stable for the world (no pods modelled)
    # CloudStack's wording (AgentManagerImpl / HighAvailabilityManagerImpl).
    desc = "name: kvm-07 (id:1), availability zone: zone-manchester, pod: zone-manchester-pod-1"
    assert alert["subject"] == f"Host is down, {desc}"
    assert alert["body"] == f"Host [{desc}] is down."

    assert await rig.fanout.flush(DEADLINE)
    assert all(s["failed"] == s["dropped"] == 0 for s in rig.fanout.stats().values())
    events: list[NativeEvent] = list(sim.emitter.emitted)
    actions = [e for e in events if e.category == "ActionEvent"]
    alerts = [e for e in events if e.category == "AlertEvent"]
    assert [a.event_id for a in alerts] == [alert["event_id"]]
    # Each async command: Scheduled (VM.CREATE: Created first), Started, Completed, in order.
    kinds = ("VM.CREATE", "SNAPSHOT.CREATE", "PROJECT.SUSPEND")
    assert [e.event_type for e in actions] == sorted(
        (e.event_type for e in actions), key=kinds.index
    )
    for kind in kinds:
        statuses = [e.body["status"] for e in actions if e.event_type == kind]
        assert statuses[-3:] == ["Scheduled", "Started", "Completed"], (kind, statuses)
    count = {kind: sum(e.event_type == kind for e in actions) for kind in kinds}
    # Events the fabric's own calls caused carry its user's uuid, whoever owns the resource.
    assert {e.body["user"] for e in actions} == {fabric_user}
    assert {e.body["entityuuid"] for e in actions} == {vm, snap, project}

    # RabbitMQ: every event, in emission order, CloudStack's routing keys and bytes.
    messages = await drain(rig.queue, len(events))
    keys = [m.routing_key for m in messages]
    assert keys == [e.routing_key() for e in events]
    vm_key = f"management-server.ActionEvent.VM-CREATE.VirtualMachine.{vm}"
    assert keys.count(vm_key) == count["VM.CREATE"]
    snap_key = f"management-server.ActionEvent.SNAPSHOT-CREATE.Snapshot.{snap}"
    assert keys.count(snap_key) == count["SNAPSHOT.CREATE"]
    project_key = f"management-server.ActionEvent.PROJECT-SUSPEND.Project.{project}"
    assert keys.count(project_key) == count["PROJECT.SUSPEND"]
    assert keys[-1] == HOST_DOWN_KEY
    amqp = {e.event_id: m.body for e, m in zip(events, messages, strict=True)}
    assert all(amqp[e.event_id] == e.body_json() for e in events)
    for body in (json.loads(m.body) for m in messages):
        assert all(isinstance(v, str) for v in body.values()), body
    assert json.loads(messages[-1].body)["podId"] == alert["podId"]

    # Kafka: key = resource uuid (none for the alert), value = the same bytes.
    records = await read_topic(kafka_broker, rig.topic, len(events))
    expected = [(e.kafka_key, amqp[e.event_id]) for e in events]
    assert sorted(records, key=repr) == sorted(expected, key=repr)
    assert (None, amqp[alerts[0].event_id]) in records
    assert records.count((vm.encode(), amqp[actions[0].event_id])) == 1

    # Webhook: ActionEvents only, the same bytes, signed, ids that listEvents knows.
    async def all_hooked() -> bool:
        return len(rig.hook.requests) >= len(actions)

    await until(all_hooked, "webhook deliveries")
    assert len(rig.hook.requests) == len(actions)
    listed_ids = {row["id"] for row in listed}
    for (headers, body), event in zip(rig.hook.requests, actions, strict=True):
        assert body == amqp[event.event_id]
        assert headers["X-CS-Event-ID"] == event.event_id
        assert headers["X-CS-Event-ID"] in listed_ids
        assert headers["X-CS-Event"] == event.event_type
        assert headers["User-Agent"] == f"CS-Hookshot/{event.account_uuid}"
        assert hmac.compare_digest(headers["X-CS-Signature"], signed_by(SECRET, body))
    assert json.loads(rig.hook.requests[-1][1])["project"] == project

    # listEvents: the action events (newest first), as the csfabric user; never the alert.
    ours = [row for row in listed if row["id"] in {e.event_id for e in actions}]
    assert [row["id"] for row in ours] == [e.event_id for e in reversed(actions)]
    assert {row["username"] for row in ours} == {"csfabric"}
    assert {row["type"] for row in ours} == {"VM.CREATE", "SNAPSHOT.CREATE", "PROJECT.SUSPEND"}
    assert alert["event_id"] not in listed_ids
    assert not any(row["type"].startswith("ALERT.") for row in listed)


async def test_host_down_defaults_are_deterministic(rig: Rig) -> None:
    """An empty body raises a host-down in the primary zone; same seed → same pod uuid."""
    key = rig.sim.admin_secret()
    first = await raise_alert(rig.admin_url, key, {})
    again = await raise_alert(rig.admin_url, key, {"zone": first[1]["dataCenterId"]})
    assert first[0] == again[0] == 200
    assert first[1]["event"] == "ALERT.COMPUTE.HOST"
    assert first[1]["dataCenterId"] == rig.sim.world.zone_named("zone-london").id
    assert first[1]["podId"] == again[1]["podId"]
    assert first[1]["subject"] == again[1]["subject"]
    assert first[1]["subject"].startswith("Host is down, name: host-1 (id:1), ")
    other = Simulator(World.demo(SEED), job_latency=0.05)
    await other.start("127.0.0.1", free_port())
    try:
        _, repeat = await raise_alert(other.url.removesuffix("/client/api") + ALERTS_PATH, key, {})
    finally:
        await other.stop()
    assert repeat["podId"] == first[1]["podId"]
    assert (await raise_alert(rig.admin_url, key, {"event": "VM.CREATE"}))[0] == 400
    assert (await raise_alert(rig.admin_url, key, {"colour": "red"}))[0] == 400


async def test_failed_webhook_logs_once_per_event(
    hook: Hook, caplog: pytest.LogCaptureFixture
) -> None:
    """Three failed tries are one warning naming the cause; the history stays bounded."""
    hook.status = 503
    sink = WebhookSink(hook.url, SECRET)
    event = action_event(
        "VM.CREATE", "Completed", "done", user=str(uuid.uuid4()), account=str(uuid.uuid4()),
        entity="VirtualMachine", entity_uuid=str(uuid.uuid4()), when=datetime.now(UTC), tz=UTC,
    )  # fmt: skip
    try:
        with caplog.at_level(logging.WARNING, logger="csfabric.cloudstack.simulator.feeds"):
            await sink.emit(event)
        warnings = [r for r in caplog.records if r.name.endswith("feeds")]
        assert len(hook.requests) == 3
        assert len(warnings) == 1
        assert "HTTP 503" in warnings[0].getMessage()
        assert event.event_id in warnings[0].getMessage()
        assert sink.deliveries.maxlen is not None
        for _ in range(sink.deliveries.maxlen + 5):
            sink.deliveries.append(sink.deliveries[-1])
        assert len(sink.deliveries) == sink.deliveries.maxlen
    finally:
        await sink.close()
