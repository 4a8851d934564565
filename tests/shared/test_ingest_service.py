"""A service-shaped test, written once and run in memory and on nats-server: the ingest
service's pipeline (parse → seen-set claim → publish or dead-letter) on a context made by
``csfabric.kernel.testing.service_context``, and a downstream consumer that receives what
it stored.  The in-memory run is what a service's own handler tests look like: no server.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from csfabric.cloudstack import NativeMessage
from csfabric.cloudstack._native import action_event
from csfabric.ingest.handlers import SEEN_BUCKET, Pipeline, SeenSet
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel import CloudEvent, parse_event
from csfabric.kernel.bus import Bus, Consumer, ConsumerOptions, DeadLetter, Delivery
from csfabric.kernel.testing import service_context

from tests.backbone import Backbone
from tests.integration._workload import eventually, stored

TZ = ZoneInfo("Europe/Berlin")
T0 = datetime(2024, 11, 28, 8, 15, 0, tzinfo=UTC)
USER = str(uuid.uuid5(uuid.NAMESPACE_URL, "user/alice"))
ACCOUNT = str(uuid.uuid5(uuid.NAMESPACE_URL, "account/alice"))


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No dev.json of a running `csfabric dev` may leak into these settings.
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path / "state"))


def settings() -> IngestSettings:
    return IngestSettings(
        cloud_name="test-cloud", amqp_url=None, kafka_bootstrap=None, poll_interval=0
    )


def webhook_and_row(i: int) -> tuple[NativeMessage, dict[str, Any]]:
    """One ActionEvent as a webhook delivery and as its listEvents row (different ids)."""
    when = T0 + timedelta(seconds=i)
    event = action_event(
        "VM.CREATE",
        "Completed",
        f"Successfully completed deploying Vm #{i}",
        user=USER,
        account=ACCOUNT,
        entity="VirtualMachine",
        entity_uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"vm/{i}")),
        when=when,
        tz=TZ,
    )
    hook = NativeMessage(event.body_json(), "webhook", headers={"X-CS-Event-ID": event.event_id})
    row = {
        "id": event.event_id,
        "type": "VM.CREATE",
        "state": "Completed",
        "created": when.strftime("%Y-%m-%dT%H:%M:%S+0000"),
        "description": event.body["description"],
        "resourceid": event.body["entityuuid"],
        "resourcetype": "VirtualMachine",
        "username": "alice",
        "account": "alice",
        "domain": "ROOT",
    }
    return hook, row


async def pipeline(bus: Bus) -> Pipeline:
    seen = SeenSet(await bus.key_value(SEEN_BUCKET, ttl=3600))
    return Pipeline(service_context(bus, "ingest"), settings(), seen=seen)


async def test_a_webhook_its_copy_and_its_row_are_stored_once(backbone: Backbone) -> None:
    ingest = await pipeline(await backbone.bus("ingest"))
    hook, row = webhook_and_row(1)
    outcomes = [await ingest.ingest(hook), await ingest.ingest(hook), await ingest.ingest_row(row)]
    assert outcomes == ["stored", "duplicate", "duplicate"]
    [message] = await stored(ingest.ctx.bus, "CSFABRIC_EVENTS")
    event = parse_event(message.data or b"")
    assert message.subject == f"csfabric.{event.type}"
    assert event.type == "cloudstack.action.VM.CREATE"
    assert event.source == "test-cloud"


async def test_two_replicas_race_on_the_same_events_and_store_each_once(
    backbone: Backbone,
) -> None:
    first, second = [await pipeline(await backbone.bus("ingest")) for _ in range(2)]
    pairs = [webhook_and_row(i) for i in range(20)]
    outcomes = await asyncio.gather(
        *(first.ingest(hook) for hook, _ in pairs),
        *(second.ingest_row(row) for _, row in pairs),
    )
    assert outcomes.count("stored") == 20
    assert outcomes.count("duplicate") == 20
    assert len(await stored(first.ctx.bus, "CSFABRIC_EVENTS")) == 20


async def test_bad_input_is_dead_lettered_and_good_input_reaches_a_consumer(
    backbone: Backbone,
) -> None:
    bus = await backbone.bus("ingest")
    ingest = await pipeline(bus)
    received: list[CloudEvent] = []

    async def downstream(event: CloudEvent, delivery: Delivery) -> None:
        received.append(event)

    consumer: Consumer[CloudEvent] = Consumer(
        bus, "csfabric.cloudstack.>", "downstream", downstream, ConsumerOptions()
    )
    await consumer.start()
    try:
        garbage = NativeMessage(b"{not json", "webhook")
        assert await ingest.ingest(garbage) == "dead-lettered"
        hook, _ = webhook_and_row(7)
        assert await ingest.ingest(hook) == "stored"
        await eventually(lambda: received, within=10, what="the event downstream")
    finally:
        await consumer.stop()
    assert [e.subject for e in received] == [str(uuid.uuid5(uuid.NAMESPACE_URL, "vm/7"))]
    [letter_msg] = await stored(bus, "CSFABRIC_DLQ")
    letter = DeadLetter.from_message(letter_msg.data or b"", letter_msg.headers or {})
    assert (letter.service, letter.subject, letter.original) == ("ingest", "webhook", b"{not json")
