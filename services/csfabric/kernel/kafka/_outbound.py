"""JetStream subjects → one Kafka topic, acked on JetStream only once Kafka holds it."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaError,
)

from csfabric.kernel._envelope import CloudEvent
from csfabric.kernel._logs import get_logger
from csfabric.kernel._tracing import inject_headers
from csfabric.kernel.bus import MSG_ID, Bus, Consumer, ConsumerOptions, Delivery, Handler, raw_bytes
from csfabric.kernel.errors import PermanentError, TransientError
from csfabric.kernel.kafka._settings import (
    _KAFKA_PERMANENT,
    STRUCTURED_CONTENT_TYPE,
    KafkaBridgeSettings,
    record_key,
)

log = get_logger(__name__)


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


__all__ = ["NatsToKafka"]
