"""Kafka topics → JetStream: commit only after the JetStream publish is acknowledged.

A record that is not a valid CloudEvent (or cannot be written as one) is dead-lettered at
once, in the consumer span of its record; the group loop (:mod:`._group`) dead-letters a
record whose handling kept failing otherwise, after its bounded attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from nats.errors import MaxPayloadError
from opentelemetry.trace import SpanKind

from csfabric.kernel._envelope import DEFAULT_MAX_BYTES, CloudEvent, parse_event, subject_for
from csfabric.kernel._logs import clip, get_logger
from csfabric.kernel._tracing import extract_context, get_tracer
from csfabric.kernel.bus import HEADER_ROOM, Bus, DeadLetter, dlq_subject
from csfabric.kernel.errors import EnvelopeError, PermanentError
from csfabric.kernel.kafka._group import CommitAfterHandling, where
from csfabric.kernel.kafka._settings import (
    _TRACE_HEADERS,
    KafkaBridgeSettings,
)

__all__ = ["KafkaToNats"]

log = get_logger(__name__)


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
        self._group: CommitAfterHandling | None = None
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
            auto_offset_reset=s.offset_reset,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
        )
        self._consumer = consumer
        self._group = CommitAfterHandling(
            consumer,
            self._bridge,
            name=f"kafka-in:{s.group_id}",
            dead_letter=self._exhausted,
            max_attempts=s.max_attempts_in,
            max_records=s.max_records,
            retry_pause=self.retry_pause,
            stop_grace=self.stop_grace,
        )
        await self._group.start()

    async def stop(self) -> None:
        """Finish the batch in hand (commit included), then leave the group."""
        if self._group is not None:
            await self._group.stop()
            self._group = None
            self._consumer = None

    async def run(self) -> None:
        await self.start()
        assert self._group is not None
        try:
            await self._group.wait()
        finally:
            await self.stop()

    async def _bridge(self, record: Any) -> None:
        raw: bytes = record.value or b""
        carrier = _trace_carrier(record)
        try:
            event: CloudEvent | EnvelopeError = parse_event(raw, max_bytes=self.max_event_bytes)
        except EnvelopeError as exc:
            event = exc
        except Exception as exc:  # a parser bug must not hold the partition: dead letter
            event = EnvelopeError(f"parser failed: {type(exc).__name__}: {exc}")
        if isinstance(event, CloudEvent) and "traceparent" not in carrier and event.traceparent:
            carrier = {"traceparent": event.traceparent, "tracestate": event.tracestate or ""}
        # Dead letters too are published in this span, so they join the producer's trace.
        with self._tracer.start_as_current_span(
            f"{record.topic} process", context=extract_context(carrier), kind=SpanKind.CONSUMER
        ) as span:
            span.set_attribute("messaging.system", "kafka")
            span.set_attribute("messaging.source", where(record))
            try:
                if isinstance(event, EnvelopeError):
                    raise event
                span.set_attribute("cloudevents.event_id", event.id)
                ack = await self.bus.publish_event(event, self.route(event))
            except (PermanentError, MaxPayloadError) as exc:
                await self._dead_letter(record, raw, exc)
                return
        if self.bus.metrics is not None:
            self.bus.metrics.event_in(f"kafka:{record.topic}")
        self.bridged += 1
        self.duplicates += bool(ack.duplicate)

    async def _exhausted(self, record: Any, error: BaseException, attempts: int) -> None:
        """The group gave up on ``record`` (``attempts`` failed): its dead letter, traced."""
        with self._tracer.start_as_current_span(
            f"{record.topic} dead-letter",
            context=extract_context(_trace_carrier(record)),
            kind=SpanKind.CONSUMER,
        ):
            await self._dead_letter(record, record.value or b"", error, attempts)

    async def _dead_letter(
        self, record: Any, raw: bytes, error: BaseException, attempts: int = 1
    ) -> None:
        # backslashreplace: a lone surrogate quoted in a reason would make the header unsendable.
        reason = clip(str(error) or type(error).__name__, 1500, one_line=True)
        reason = reason.encode("utf-8", "backslashreplace").decode()
        if attempts > 1:
            reason = f"{type(error).__name__} after {attempts} attempts: {reason}"
        limit = max(0, self.bus.nc.max_payload - HEADER_ROOM)
        if len(raw) > limit:
            # NATS cannot carry it whole; a cut copy still shows what arrived.
            reason += f" (original cut to {limit} of {len(raw)} bytes)"
            raw = raw[:limit]
        letter = DeadLetter(
            service=self.bus.service,
            reason=reason,
            error=type(error).__name__,
            subject=f"kafka:{where(record)}",
            deliveries=attempts,
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
        log.warning("dead-lettered kafka record %s: %s", where(record), letter.reason)


def _trace_carrier(record: Any) -> dict[str, str]:
    return {
        name.lower(): value.decode("utf-8", "replace")
        for name, value in record.headers or ()
        if name.lower() in _TRACE_HEADERS and value is not None
    }
