"""The Kafka bridge, both directions, with the backbone's CloudEvents envelope.

In (:class:`KafkaToNats`): offsets are committed only after every JetStream publish of a
fetched batch was acknowledged, so a restart loses nothing, and what it reads twice the
duplicate window drops (``Nats-Msg-Id`` = event id).  Records that are not CloudEvents go to
``csfabric.dlq.<service>``.  Out (:class:`NatsToKafka`): a kernel :class:`Consumer` whose
handler awaits the ``acks=all`` send, so JetStream lets go of an event only once Kafka holds
it (at least once: readers dedupe on ``ce_id``).  Keys come from :func:`record_key`, so one
resource stays on one partition, in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)
from nats.errors import MaxPayloadError
from opentelemetry.trace import SpanKind
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from .bus import MSG_ID, Bus
from .consumer import Consumer, ConsumerOptions, Delivery, Handler, raw_bytes
from .dlq import DeadLetter, dlq_subject
from .envelope import DEFAULT_MAX_BYTES, CloudEvent, parse_event, subject_for
from .errors import EnvelopeError, PermanentError, TransientError
from .settings import CsfabricSettings, read_dev_file
from .tracing import extract_context, get_tracer, inject_headers

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
STRUCTURED_CONTENT_TYPE = b"application/cloudevents+json; charset=UTF-8"
# What no retry can fix: the record is too large, or the topic is invalid or forbidden.
_KAFKA_PERMANENT = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
)
_TRACE_HEADERS = ("traceparent", "tracestate")
# Room for the Csfabric-Dlq-* headers when a dead letter must be cut to NATS's max payload.
_HEADER_ROOM = 8192


def _dev_bootstrap() -> str:
    # `csfabric dev --with kafka` publishes its broker under FabricSettings' field name.
    value = read_dev_file().get("kafka_bootstrap")
    return value if isinstance(value, str) and value else DEFAULT_BOOTSTRAP


class KafkaBridgeSettings(CsfabricSettings):
    """``CSFABRIC_KAFKA_*``; ``…_BOOTSTRAP`` is also FabricSettings' ``kafka_bootstrap``."""

    model_config = SettingsConfigDict(env_prefix="CSFABRIC_KAFKA_", extra="ignore")

    bootstrap: str = Field(default_factory=_dev_bootstrap, description="host:port[,host:port]")
    topic_in: str = Field("csfabric.lifecycle", description="topics bridged in, comma-separated")
    group_id: str = Field("csfabric-bridge", description="consumer group of the bridge in")
    topic_out: str = Field("csfabric.events", description="topic the bridge out writes")
    subject_out: str = Field("csfabric.lifecycle.>", description="NATS filter bridged out")
    stream_out: str = Field("CSFABRIC_EVENTS", description="the stream holding subject_out")
    durable_out: str = Field("csfabric-kafka-out", description="JetStream durable, bridge out")
    raw_out: bool = Field(False, description="send payloads as they are (audit export)")
    # High, so that a Kafka outage pauses the bridge out instead of dead-lettering its input.
    max_deliver_out: int = Field(100, ge=1, description="sends tried before dead-lettering")
    max_records: int = Field(500, ge=1, description="records per fetched batch, bridge in")
    session_timeout_ms: int = Field(10_000, ge=1, description="consumer group session timeout")
    heartbeat_interval_ms: int = Field(3_000, ge=1, description="consumer group heartbeat")
    # Tansu 0.6 answers InitProducerId with an error; real Kafka takes it.
    idempotence: bool = Field(False, description="idempotent producer")

    def topics_in(self) -> list[str]:
        return [topic.strip() for topic in self.topic_in.split(",") if topic.strip()]


def record_key(event: CloudEvent) -> bytes:
    """The resource uuid (CloudEvent ``subject``) when there is one, else the NATS subject."""
    return (event.subject or subject_for(event)).encode()


def _where(record: Any) -> str:
    return f"{record.topic}/{record.partition}@{record.offset}"


class KafkaToNats:
    """Kafka topics → JetStream; :meth:`start` / :meth:`stop`, or :meth:`run` until cancelled."""

    def __init__(
        self,
        bus: Bus,
        settings: KafkaBridgeSettings | None = None,
        *,
        route: Callable[[CloudEvent], str] = subject_for,
        max_event_bytes: int = DEFAULT_MAX_BYTES,
        retry_pause: float = 1.0,
        stop_grace: float = 5.0,
    ) -> None:
        self.bus = bus
        self.settings = settings or KafkaBridgeSettings()
        self.route = route
        self.max_event_bytes = max_event_bytes
        self.retry_pause = retry_pause
        self.stop_grace = stop_grace
        self._tracer = get_tracer("csfabric.kafka")
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self.bridged = 0
        self.duplicates = 0
        self.dead_lettered = 0

    async def start(self) -> None:
        s = self.settings
        consumer = AIOKafkaConsumer(
            *s.topics_in(),
            bootstrap_servers=s.bootstrap,
            group_id=s.group_id,
            client_id=f"csfabric-{self.bus.service}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
        )
        await consumer.start()
        self._consumer = consumer
        self._running = True
        self._task = asyncio.create_task(self._loop(), name=f"kafka-in:{s.group_id}")

    async def stop(self) -> None:
        """Finish the batch in hand (commit included), then leave the group."""
        self._running = False
        if self._task is not None:
            # A fetch returns within 0.5 s; a retry pause may not, and cutting it (or a
            # batch) short is safe: nothing uncommitted is lost, only read again.
            await asyncio.wait({self._task}, timeout=self.stop_grace)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def run(self) -> None:
        await self.start()
        assert self._task is not None
        try:
            await asyncio.shield(self._task)
        finally:
            await self.stop()

    async def _loop(self) -> None:
        consumer, failures = self._consumer, 0
        while self._running:
            try:
                batch = await consumer.getmany(
                    timeout_ms=500, max_records=self.settings.max_records
                )
            except KafkaError as exc:
                # aiokafka reconnects by itself; fetching again is all there is to do.
                log.warning("kafka fetch failed (%s), retrying", exc)
                await self.bus.clock.sleep(self.retry_pause)
                continue
            if not batch:
                continue
            outcomes = await asyncio.gather(
                *(self._partition(tp, records) for tp, records in batch.items())
            )
            done = zip(batch, outcomes, strict=True)
            offsets = {tp: offset for tp, (offset, _) in done if offset is not None}
            if offsets:
                try:
                    await consumer.commit(offsets)
                except KafkaError as exc:
                    # A rebalance took the partitions: their next owner reads the records
                    # again, and Nats-Msg-Id makes that harmless.
                    log.warning("kafka commit failed (%s); records will be read again", exc)
            if any(failed for _, failed in outcomes):
                failures += 1
                await self.bus.clock.sleep(min(30.0, self.retry_pause * 2 ** (failures - 1)))
            else:
                failures = 0

    async def _partition(self, tp: Any, records: list[Any]) -> tuple[int | None, bool]:
        """Bridge in order; returns (offset to commit or None, whether a record failed)."""
        done: int | None = None
        for record in records:
            try:
                await self._bridge(record)
            except Exception as exc:
                # NATS is away (TransientError after the bus's retries) or worse: read this
                # record again on the next fetch, and keep what succeeded before it.
                log.warning("bridging %s failed (%s), will retry", _where(record), exc)
                self._consumer.seek(tp, record.offset)
                return done, True
            done = record.offset + 1
        return done, False

    async def _bridge(self, record: Any) -> None:
        raw: bytes = record.value or b""
        try:
            event = parse_event(raw, max_bytes=self.max_event_bytes)
        except EnvelopeError as exc:
            await self._dead_letter(record, raw, exc)
            return
        carrier = {
            name.lower(): value.decode("utf-8", "replace")
            for name, value in record.headers or ()
            if name.lower() in _TRACE_HEADERS and value is not None
        }
        if "traceparent" not in carrier and event.traceparent:
            carrier = {"traceparent": event.traceparent, "tracestate": event.tracestate or ""}
        with self._tracer.start_as_current_span(
            f"{record.topic} process", context=extract_context(carrier), kind=SpanKind.CONSUMER
        ) as span:
            span.set_attribute("messaging.system", "kafka")
            span.set_attribute("messaging.source", _where(record))
            span.set_attribute("cloudevents.event_id", event.id)
            try:
                ack = await self.bus.publish_event(event, self.route(event))
            except (PermanentError, MaxPayloadError) as exc:
                await self._dead_letter(record, raw, exc)
                return
        if self.bus.metrics is not None:
            self.bus.metrics.event_in(f"kafka:{record.topic}")
        self.bridged += 1
        self.duplicates += bool(ack.duplicate)

    async def _dead_letter(self, record: Any, raw: bytes, error: BaseException) -> None:
        reason = str(error) or type(error).__name__
        limit = max(0, self.bus.nc.max_payload - _HEADER_ROOM)
        if len(raw) > limit:
            # NATS cannot carry it whole; a cut copy still shows what arrived.
            reason += f" (original cut to {limit} of {len(raw)} bytes)"
            raw = raw[:limit]
        letter = DeadLetter(
            service=self.bus.service,
            reason=reason,
            error=type(error).__name__,
            subject=f"kafka:{_where(record)}",
            deliveries=1,
            stream=None,
            stream_seq=None,
            time=self.bus.clock.now(),
            original=raw,
        )
        msg_id = f"dlq:kafka:{record.topic}:{record.partition}:{record.offset}"
        await self.bus.publish(
            dlq_subject(self.bus.service), raw, msg_id=msg_id, headers=letter.headers()
        )
        if self.bus.metrics is not None:
            self.bus.metrics.dead_letter(letter.error)
        self.dead_lettered += 1
        log.warning("dead-lettered kafka record %s: %s", _where(record), letter.reason)


class NatsToKafka:
    """JetStream subjects → one Kafka topic: CloudEvents in structured mode, or, with
    ``raw_out`` (audit export), payloads unchanged, keyed by NATS subject, with
    ``nats_msg_id`` / ``nats_stream_seq`` headers for readers to dedupe and order by.
    """

    def __init__(
        self,
        bus: Bus,
        settings: KafkaBridgeSettings | None = None,
        *,
        options: ConsumerOptions | None = None,
    ) -> None:
        self.bus = bus
        self.settings = s = settings or KafkaBridgeSettings()
        self.options = options or ConsumerOptions(
            stream=s.stream_out, max_deliver=s.max_deliver_out, backoff_cap=30.0
        )
        self._producer: Any = None
        self.consumer: Consumer[Any] | None = None
        self.sent = 0

    @property
    def dead_lettered(self) -> int:
        return self.consumer.dead_lettered if self.consumer is not None else 0

    async def start(self) -> None:
        s = self.settings
        producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap,
            client_id=f"csfabric-{self.bus.service}",
            acks="all",
            enable_idempotence=s.idempotence,
        )
        await producer.start()
        self._producer = producer
        handler: Handler[Any] = self._send_raw if s.raw_out else self._send_event
        decode = raw_bytes if s.raw_out else None
        self.consumer = Consumer(
            self.bus, s.subject_out, s.durable_out, handler, self.options, decode=decode
        )
        await self.consumer.start()

    async def stop(self) -> None:
        """Stop consuming, let the sends in hand finish, then flush and close the producer."""
        if self.consumer is not None:
            await self.consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _send_event(self, event: CloudEvent, delivery: Delivery) -> None:
        headers = {"ce_id": event.id, "ce_type": event.type}
        await self._send(event.to_json(), record_key(event), headers, STRUCTURED_CONTENT_TYPE)

    async def _send_raw(self, data: bytes, delivery: Delivery) -> None:
        headers = {"nats_subject": delivery.subject}
        if MSG_ID in delivery.headers:
            headers["nats_msg_id"] = delivery.headers[MSG_ID]
        if delivery.stream_seq is not None:
            headers["nats_stream_seq"] = str(delivery.stream_seq)
        await self._send(data, delivery.subject.encode(), headers, None)

    async def _send(
        self, value: bytes, key: bytes, headers: dict[str, str], content_type: bytes | None
    ) -> None:
        # Called inside the consumer's span, so the injected traceparent continues the trace.
        record_headers = [(k, v.encode()) for k, v in inject_headers(headers).items()]
        if content_type is not None:
            record_headers.append(("content-type", content_type))
        topic = self.settings.topic_out
        try:
            await self._producer.send_and_wait(topic, value, key=key, headers=record_headers)
        except _KAFKA_PERMANENT as exc:
            raise PermanentError(f"kafka refused the record for {topic}: {exc}") from exc
        except KafkaError as exc:
            raise TransientError(f"kafka send to {topic} failed: {exc}") from exc
        if self.bus.metrics is not None:
            self.bus.metrics.event_out(f"kafka:{topic}")
        self.sent += 1


__all__ = [
    "DEFAULT_BOOTSTRAP",
    "KafkaBridgeSettings",
    "KafkaToNats",
    "NatsToKafka",
    "record_key",
]
