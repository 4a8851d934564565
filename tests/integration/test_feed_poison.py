# ruff: noqa: F811  (fixtures imported from test_ingest_feeds are redefined as arguments)
"""No poison pill: every feed dead-letters what it cannot handle and moves on.

Against real RabbitMQ, the Kafka-protocol broker (tansu) and nats-server.  A poison message
(a time outside UTC's range, a lone surrogate) is dead-lettered at once with its reason and
the good message behind it is stored; an unclassified handler error is retried a bounded
number of times (the default) and then dead-lettered; "NATS is away" is retried without
using up that budget; the RabbitMQ feed keeps per-resource order across a retry.
Failures are injected at the bus's ``publish_event`` (the pipeline's only way out).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aiokafka import AIOKafkaProducer
from csfabric.cloudstack import NativeMessage
from csfabric.cloudstack._native import action_event, gson_dumps
from csfabric.ingest.feeds.amqp import start_amqp
from csfabric.ingest.feeds.kafka import KafkaFeed, start_kafka
from csfabric.ingest.handlers import Pipeline
from csfabric.kernel import CloudEvent, TransientError, parse_event
from csfabric.kernel.bus import Bus, DeadLetter, dlq_subject
from csfabric.kernel.kafka import KafkaToNats

from tests.integration.test_ingest_feeds import (
    ACCOUNT,
    DLQ,
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
    pipeline,  # noqa: F401  (fixture)
    publish_amqp,
    publish_kafka,
    rabbit_cleanup,
    stored,
)
from tests.integration.test_kafka_bridge import bridge_settings
from tests.integration.test_kafka_bridge import events as lifecycle_events

pytestmark = pytest.mark.integration

VM = str(uuid.uuid5(uuid.NAMESPACE_URL, "vm/poison"))
ROUTING = f"management-server.ActionEvent.VM-CREATE.VirtualMachine.{VM}"


def poison_bodies() -> dict[bytes, str]:
    """Native bodies that parse as JSON but can never be stored → the reason expected."""
    good = distinct_events(uuid.uuid4().hex, 1)[0].body
    return {
        gson_dumps(good | {"eventDateTime": "0001-01-01 00:00:00 +0100"}): "out of range",
        gson_dumps(good | {"eventDateTime": "9999-12-31 23:59:59 -1400"}): "out of range",
        gson_dumps(good | {"description": "lone \ud800 surrogate"}): "invalid Unicode",
    }


async def _true(value: bool) -> bool:
    return value


async def letters(bus: Bus) -> list[DeadLetter]:
    return [DeadLetter.from_message(m.data or b"", m.headers or {}) for m in await stored(bus, DLQ)]


async def produce_raw(bootstrap: str, topic: str, values: list[bytes], key: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def publish_raw_amqp(url: str, exchange: str, values: list[bytes], routing: str) -> None:
    conn = await aio_pika.connect(url)
    try:
        channel = await conn.channel()
        target = await channel.get_exchange(exchange)
        for body in values:
            message = aio_pika.Message(
                body, content_type="text/plain", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            await target.publish(message, routing_key=routing)
    finally:
        await conn.close()


def flaky_publish(
    bus: Bus, fails: Callable[[CloudEvent], BaseException | None]
) -> Callable[..., Any]:
    """``bus.publish_event`` that raises ``fails(event)`` when it is not None."""
    real = bus.publish_event

    async def publish(event: CloudEvent, subject: str | None = None) -> Any:
        error = fails(event)
        if error is not None:
            raise error
        return await real(event, subject)

    return publish


def native_of(event: CloudEvent) -> dict[str, str]:
    return dict(event.data["native"])


async def until_assigned(feed: KafkaFeed) -> None:
    """The group has its partitions and their start positions (``latest`` resolved)."""
    assert feed._group is not None
    consumer = feed._group.consumer
    await eventually(lambda: _true(bool(consumer.assignment())))
    for tp in consumer.assignment():
        await consumer.position(tp)


# -- poison pills ---------------------------------------------------------------------


async def test_kafka_feed_dead_letters_poison_and_ingests_the_good_record_behind_it(
    kafka_broker: str, bus: Bus, tmp_path: Path, pipeline: Pipeline
) -> None:
    settings = ingest_settings(
        tmp_path, kafka_bootstrap=kafka_broker, kafka_offset_reset="earliest"
    )
    poison = poison_bodies()
    good = distinct_events(uuid.uuid4().hex, 2)
    # One key, one partition: the good records sit behind the poison ones.
    await produce_raw(kafka_broker, settings.kafka_topic, list(poison), key=VM.encode())
    await produce_raw(
        kafka_broker, settings.kafka_topic, [e.body_json() for e in good], VM.encode()
    )
    feed = await start_kafka(pipeline, settings, session_timeout_ms=SESSION_MS)
    try:
        await eventually(lambda: _true(feed.stored == len(poison) + len(good)), within=20)
    finally:
        await feed.stop()
    assert [native_of(parse_event(m.data or b"")) for m in await stored(bus)] == [
        e.body for e in good
    ]
    dead = await letters(bus)
    assert {d.original: d.reason for d in dead}.keys() == poison.keys()
    for letter in dead:
        assert poison[letter.original] in letter.reason
        assert (letter.service, letter.error) == ("ingest", "EnvelopeError")
    assert {m.subject for m in await stored(bus, DLQ)} == {dlq_subject("ingest")}


async def test_amqp_feed_dead_letters_poison_and_ingests_the_good_message_behind_it(
    rabbitmq_url: str, bus: Bus, tmp_path: Path, pipeline: Pipeline
) -> None:
    settings = ingest_settings(tmp_path, amqp_url=rabbitmq_url)
    poison = poison_bodies()
    good = distinct_events(uuid.uuid4().hex, 2)
    async with rabbit_cleanup(rabbitmq_url, settings):
        feed = await start_amqp(pipeline, settings)
        try:
            await publish_raw_amqp(rabbitmq_url, settings.amqp_exchange, list(poison), ROUTING)
            await publish_amqp(rabbitmq_url, settings.amqp_exchange, good)
            await eventually(lambda: _true(feed.acked == len(poison) + len(good)), within=20)
        finally:
            await feed.stop()
    bodies = [native_of(parse_event(m.data or b"")) for m in await stored(bus)]
    assert sorted(map(str, bodies)) == sorted(str(e.body) for e in good)
    dead = await letters(bus)
    assert sorted(d.original for d in dead) == sorted(poison)
    for letter in dead:
        assert poison[letter.original] in letter.reason
        assert letter.subject == f"amqp:{ROUTING}"


async def test_kafka_bridge_dead_letters_poison_and_bridges_the_good_record_behind_it(
    kafka_broker: str, bus: Bus
) -> None:
    settings = bridge_settings(kafka_broker)
    base = {"specversion": "1.0", "source": "/x", "type": "environment.created"}
    poison = {
        json.dumps(base | {"id": "p1", "time": "0001-01-01T00:00:00+01:00"}).encode(): "out of",
        json.dumps(base | {"id": "p2", "time": "9999-12-31T23:59:59-14:00"}).encode(): "out of",
        json.dumps(base | {"id": "p3", "data": {"d": "\ud800"}}).encode(): "invalid Unicode",
    }
    good = lifecycle_events(settings.group_id, 0, 2)
    await produce_raw(kafka_broker, settings.topic_in, list(poison), key=b"k")
    await produce_raw(kafka_broker, settings.topic_in, [e.to_json() for e in good], key=b"k")
    bridge = KafkaToNats(bus, settings)
    await bridge.start()
    try:
        await eventually(lambda: _true(bridge.bridged + bridge.dead_lettered >= 5), within=20)
    finally:
        await bridge.stop()
    assert (bridge.bridged, bridge.dead_lettered) == (2, 3)
    assert [parse_event(m.data or b"").id for m in await stored(bus)] == [e.id for e in good]
    dead = await stored(bus, DLQ)
    assert {m.subject for m in dead} == {dlq_subject(bus.service)}
    for letter in [DeadLetter.from_message(m.data or b"", m.headers or {}) for m in dead]:
        assert poison[letter.original] in letter.reason


# -- bounded retries, back-pressure ---------------------------------------------------


async def test_kafka_feed_gives_up_on_an_unclassified_error_after_the_default_attempts(
    kafka_broker: str, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ingest_settings(
        tmp_path, kafka_bootstrap=kafka_broker, kafka_offset_reset="earliest"
    )
    bad, *good = distinct_events(uuid.uuid4().hex, 3)
    tries: list[str] = []

    def fails(event: CloudEvent) -> BaseException | None:
        if native_of(event) == bad.body:
            tries.append(event.id)
            return RuntimeError("handler bug")
        return None

    monkeypatch.setattr(bus, "publish_event", flaky_publish(bus, fails))
    pipeline = Pipeline(make_context(bus), settings)
    await produce_raw(
        kafka_broker, settings.kafka_topic, [e.body_json() for e in [bad, *good]], key=b"k"
    )
    # Shorter pauses only; the number of attempts is the shipped default (5).
    feed = await start_kafka(pipeline, settings, session_timeout_ms=SESSION_MS, retry_pause=0.05)
    try:
        await eventually(lambda: _true(feed.stored == len(good)), within=30)
    finally:
        await feed.stop()
    assert len(tries) == settings.kafka_max_attempts == 5
    assert feed.dead_lettered == 1
    assert [native_of(parse_event(m.data or b"")) for m in await stored(bus)] == [
        e.body for e in good
    ]
    (letter,) = await letters(bus)
    assert letter.original == bad.body_json()
    assert (letter.error, letter.deliveries) == ("RuntimeError", 5)
    assert "RuntimeError after 5 attempts: handler bug" in letter.reason


async def test_amqp_feed_gives_up_on_an_unclassified_error_after_the_default_attempts(
    rabbitmq_url: str, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ingest_settings(tmp_path, amqp_url=rabbitmq_url)
    bad, *good = distinct_events(uuid.uuid4().hex, 3)
    tries: list[str] = []

    def fails(event: CloudEvent) -> BaseException | None:
        if native_of(event) == bad.body:
            tries.append(event.id)
            return RuntimeError("handler bug")
        return None

    monkeypatch.setattr(bus, "publish_event", flaky_publish(bus, fails))
    pipeline = Pipeline(make_context(bus), settings)
    async with rabbit_cleanup(rabbitmq_url, settings):
        feed = await start_amqp(pipeline, settings, retry_pause=0.05)
        try:
            await publish_amqp(rabbitmq_url, settings.amqp_exchange, [bad, *good])
            await eventually(lambda: _true(feed.acked == 3), within=30)
        finally:
            await feed.stop()
    assert len(tries) == 5
    assert feed.dead_lettered == 1
    (letter,) = await letters(bus)
    assert letter.original == bad.body_json()
    assert (letter.error, letter.deliveries) == ("RuntimeError", 5)
    assert len(await stored(bus)) == len(good)


@pytest.mark.parametrize("transport", ["amqp", "kafka"])
async def test_nats_away_does_not_use_up_a_messages_attempts(
    transport: str,
    rabbitmq_url: str,
    kafka_broker: str,
    bus: Bus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eight TransientErrors in a row (more than the 5 attempts): stored, not dead-lettered."""
    settings = ingest_settings(
        tmp_path,
        amqp_url=rabbitmq_url,
        kafka_bootstrap=kafka_broker,
        kafka_offset_reset="earliest",
    )
    events = distinct_events(uuid.uuid4().hex, 2)
    away = [8]

    def fails(event: CloudEvent) -> BaseException | None:
        if native_of(event) == events[0].body and away[0] > 0:
            away[0] -= 1
            return TransientError("NATS unavailable after 12 attempts")
        return None

    monkeypatch.setattr(bus, "publish_event", flaky_publish(bus, fails))
    pipeline = Pipeline(make_context(bus), settings)
    async with rabbit_cleanup(rabbitmq_url, settings):
        if transport == "amqp":
            feed: Any = await start_amqp(pipeline, settings, retry_pause=0.02)
            await publish_amqp(rabbitmq_url, settings.amqp_exchange, events)
            done: Callable[[], bool] = lambda: feed.acked == 2  # noqa: E731
        else:
            await publish_kafka(kafka_broker, settings.kafka_topic, events)
            feed = await start_kafka(
                pipeline, settings, session_timeout_ms=SESSION_MS, retry_pause=0.02
            )
            done = lambda: feed.stored == 2  # noqa: E731
        try:
            await eventually(lambda: _true(done()), within=60)
        finally:
            await feed.stop()
    assert away == [0]
    assert len(await stored(bus)) == 2
    assert await letters(bus) == []


async def test_kafka_record_whose_dead_letter_fails_is_kept_until_it_is_stored(
    kafka_broker: str, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ingest_settings(
        tmp_path, kafka_bootstrap=kafka_broker, kafka_offset_reset="earliest"
    )
    bad, good = distinct_events(uuid.uuid4().hex, 2)
    monkeypatch.setattr(
        bus,
        "publish_event",
        flaky_publish(bus, lambda e: RuntimeError("bug") if native_of(e) == bad.body else None),
    )
    pipeline = Pipeline(make_context(bus), settings)
    real_dead_letter = pipeline.dead_letter
    dlq_up = asyncio.Event()
    refused = [0]

    async def dead_letter(msg: Any, error: BaseException, attempts: int) -> None:
        if not dlq_up.is_set():
            refused[0] += 1
            raise TransientError("NATS unavailable")
        await real_dead_letter(msg, error, attempts)

    monkeypatch.setattr(pipeline, "dead_letter", dead_letter)
    await produce_raw(kafka_broker, settings.kafka_topic, [bad.body_json(), good.body_json()], b"k")
    feed = await start_kafka(pipeline, settings, session_timeout_ms=SESSION_MS, retry_pause=0.02)
    try:
        await eventually(lambda: _true(refused[0] >= 3), within=30)
        # Neither skipped nor committed past while its dead letter is not stored.
        assert feed.stored == 0
        assert await stored(bus) == []
        assert feed._group is not None
        consumer = feed._group.consumer
        assert [await consumer.committed(tp) for tp in consumer.assignment()] == [None] * len(
            consumer.assignment()
        )
        dlq_up.set()
        await eventually(lambda: _true(feed.stored == 1), within=30)
    finally:
        await feed.stop()
    assert [native_of(parse_event(m.data or b"")) for m in await stored(bus)] == [good.body]
    assert [d.original for d in await letters(bus)] == [bad.body_json()]


async def test_an_unexpected_fetch_error_does_not_end_the_kafka_loop(
    kafka_broker: str, bus: Bus, tmp_path: Path, pipeline: Pipeline
) -> None:
    settings = ingest_settings(
        tmp_path, kafka_bootstrap=kafka_broker, kafka_offset_reset="earliest"
    )
    events = distinct_events(uuid.uuid4().hex, 2)
    feed = KafkaFeed(pipeline, settings, session_timeout_ms=SESSION_MS, retry_pause=0.02)
    await feed.start()
    assert feed._group is not None
    consumer = feed._group.consumer
    real_getmany = consumer.getmany
    raised = [0]

    async def getmany(*args: Any, **kwargs: Any) -> Any:
        if raised[0] < 2:  # not a KafkaError: what ended the loop before
            raised[0] += 1
            raise RuntimeError("unexpected")
        return await real_getmany(*args, **kwargs)

    consumer.getmany = getmany  # type: ignore[method-assign]
    try:
        await publish_kafka(kafka_broker, settings.kafka_topic, events)
        await eventually(lambda: _true(feed.stored == 2), within=30)
        assert feed._group._task is not None
        assert not feed._group._task.done()
    finally:
        await feed.stop()
    assert raised == [2]


# -- per-resource order across a retry (RabbitMQ) --------------------------------------


async def test_amqp_keeps_per_resource_order_when_the_first_message_fails_once(
    rabbitmq_url: str, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ingest_settings(tmp_path, amqp_url=rabbitmq_url)
    tag = uuid.uuid4().hex
    vm = str(uuid.uuid5(uuid.NAMESPACE_URL, f"vm/{tag}"))
    started, completed = (
        action_event(
            "VM.CREATE",
            status,
            f"deploying Vm {tag}",
            user=USER,
            account=ACCOUNT,
            entity="VirtualMachine",
            entity_uuid=vm,
            when=T0,
            tz=TZ,
        )
        for status in ("Started", "Completed")
    )
    failed_once: list[str] = []

    def fails(event: CloudEvent) -> BaseException | None:
        if event.data["status"] == "Started" and not failed_once:
            failed_once.append(event.id)
            return TransientError("NATS unavailable")  # the first publish of X fails once
        return None

    monkeypatch.setattr(bus, "publish_event", flaky_publish(bus, fails))
    pipeline = Pipeline(make_context(bus), settings)
    async with rabbit_cleanup(rabbitmq_url, settings):
        feed = await start_amqp(pipeline, settings, retry_pause=0.2)
        try:
            await publish_amqp(rabbitmq_url, settings.amqp_exchange, [started, completed])
            await eventually(lambda: _true(feed.acked == 2), within=30)
        finally:
            await feed.stop()
    assert failed_once
    order = [parse_event(m.data or b"").data["status"] for m in await stored(bus)]
    assert order == ["Started", "Completed"]


async def test_a_parser_bug_is_dead_lettered_with_its_class_not_retried(
    bus: Bus, tmp_path: Path, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import csfabric.ingest.handlers as pipeline_module

    real_parse = pipeline_module.parse_native
    bad, good = distinct_events(uuid.uuid4().hex, 2)

    def buggy(msg: NativeMessage, **kwargs: Any) -> Any:
        if msg.body == bad.body_json():
            raise ZeroDivisionError("division by zero")
        return real_parse(msg, **kwargs)

    monkeypatch.setattr(pipeline_module, "parse_native", buggy)
    assert await pipeline.ingest(NativeMessage(bad.body_json(), "kafka")) == "dead-lettered"
    assert await pipeline.ingest(NativeMessage(good.body_json(), "kafka")) == "stored"
    (letter,) = await letters(bus)
    assert letter.original == bad.body_json()
    assert "parser failed: ZeroDivisionError: division by zero" in letter.reason


async def test_kafka_bridge_gives_up_on_an_unclassified_error_after_the_default_attempts(
    kafka_broker: str, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = bridge_settings(kafka_broker)
    bad, *good = lifecycle_events(settings.group_id, 0, 3)
    tries: list[str] = []

    def fails(event: CloudEvent) -> BaseException | None:
        if event.id == bad.id:
            tries.append(event.id)
            return RuntimeError("handler bug")
        return None

    monkeypatch.setattr(bus, "publish_event", flaky_publish(bus, fails))
    await produce_raw(kafka_broker, settings.topic_in, [e.to_json() for e in [bad, *good]], b"k")
    bridge = KafkaToNats(bus, settings, retry_pause=0.05)  # shorter pauses; default attempts
    await bridge.start()
    try:
        await eventually(lambda: _true(bridge.bridged == 2 and bridge.dead_lettered == 1), 30)
    finally:
        await bridge.stop()
    assert len(tries) == settings.max_attempts_in == 5
    assert [parse_event(m.data or b"").id for m in await stored(bus)] == [e.id for e in good]
    (letter,) = [
        DeadLetter.from_message(m.data or b"", m.headers or {}) for m in await stored(bus, DLQ)
    ]
    assert letter.original == bad.to_json()
    assert (letter.error, letter.deliveries) == ("RuntimeError", 5)
    assert "RuntimeError after 5 attempts: handler bug" in letter.reason


async def test_amqp_message_whose_dead_letter_fails_is_kept_until_it_is_stored(
    rabbitmq_url: str, bus: Bus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ingest_settings(tmp_path, amqp_url=rabbitmq_url)
    bad, good = distinct_events(uuid.uuid4().hex, 2)
    monkeypatch.setattr(
        bus,
        "publish_event",
        flaky_publish(bus, lambda e: RuntimeError("bug") if native_of(e) == bad.body else None),
    )
    pipeline = Pipeline(make_context(bus), settings)
    real_dead_letter = pipeline.dead_letter
    dlq_up = asyncio.Event()
    refused = [0]

    async def dead_letter(msg: Any, error: BaseException, attempts: int) -> None:
        if not dlq_up.is_set():
            refused[0] += 1
            raise TransientError("NATS unavailable")
        await real_dead_letter(msg, error, attempts)

    monkeypatch.setattr(pipeline, "dead_letter", dead_letter)
    async with rabbit_cleanup(rabbitmq_url, settings):
        feed = await start_amqp(pipeline, settings, retry_pause=0.02)
        try:
            await publish_amqp(rabbitmq_url, settings.amqp_exchange, [bad, good])
            await eventually(lambda: _true(refused[0] >= 3 and feed.acked == 1), within=30)
            assert feed.dead_lettered == 0  # not acked while its dead letter is not stored
            dlq_up.set()
            await eventually(lambda: _true(feed.acked == 2), within=30)
        finally:
            await feed.stop()
    assert feed.dead_lettered == 1
    assert [d.original for d in await letters(bus)] == [bad.body_json()]
