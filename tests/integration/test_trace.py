"""One trace id from the publisher, through the consumer, to the audit record it emits.

The trace travels only in message headers (and the envelope's ``traceparent``), so this
proves the chain end to end over a real nats-server: the origin span, the publish span,
the consumer's process span, the audit publish span, the audit record's ``trace_id`` and
the audit message's ``traceparent`` header all name the same trace.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import CloudEvent, action_key, make_event, parse_event, subject_for
from csfabric.kernel._audit import Auditor, AuditRecord, audit_subject
from csfabric.kernel._tracing import get_tracer, setup_tracing
from csfabric.kernel.bus import Bus, Consumer, Delivery
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.integration._workload import eventually

pytestmark = pytest.mark.integration

SERVICE = "tracetest"
AUDIT_STREAM = "CSFABRIC_AUDIT"


def trace_hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def named(spans: Sequence[ReadableSpan], name: str, trace_id: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name and trace_hex(s) == trace_id]


async def test_one_trace_from_publish_through_consume_to_audit(
    nats_server: NatsServerProcess,
) -> None:
    # The provider is global to the test process; spans are told apart by trace id.
    exporter = InMemorySpanExporter()
    setup_tracing("test", exporter=exporter)
    bus = await Bus.connect(nats_server.url, service=SERVICE)
    auditor = Auditor(bus)
    emitted: list[AuditRecord] = []

    async def handler(event: CloudEvent, delivery: Delivery) -> None:
        record = await auditor.emit(
            action_key=action_key(event.id, "noop"),
            decision="no-action",
            reason="trace test: nothing to do",
            input_event_ids=[event.id],
        )
        emitted.append(record)

    consumer = Consumer(bus, "csfabric.lifecycle.>", SERVICE, handler)
    await consumer.start()
    event = make_event(id="trace-1", type="trace.checked", source="/tests/trace", subject="t1")
    try:
        with get_tracer(__name__).start_as_current_span("origin") as origin:
            await bus.publish_event(event)
        trace_id = format(origin.get_span_context().trace_id, "032x")

        await eventually(lambda: len(emitted) == 1, within=15, what="the audit record")
        audit_msg = await bus.js.get_last_msg(AUDIT_STREAM, audit_subject(SERVICE))
        stored_record = AuditRecord.model_validate_json(audit_msg.data or b"")
        event_msg = await bus.js.get_last_msg("CSFABRIC_EVENTS", subject_for(event))
        stored_event = parse_event(event_msg.data or b"")
        # The consumer span ends after the ack; wait for it rather than race it.
        await eventually(
            lambda: named(
                exporter.get_finished_spans(), "csfabric.lifecycle.trace.checked process", trace_id
            ),
            within=15,
            what="the consumer's process span",
        )
    finally:
        await consumer.stop()
        await bus.close()
        # Keep what was recorded, but stop collecting the spans of later tests.
        spans = exporter.get_finished_spans()
        exporter.shutdown()

    # The envelope carries the trace too, for consumers that drop NATS headers.
    assert stored_event.trace_id == trace_id
    assert stored_record == emitted[0]
    assert stored_record.trace_id == trace_id
    assert stored_record.input_event_ids == [event.id]
    headers = audit_msg.headers or {}
    assert headers["traceparent"].split("-")[1] == trace_id

    (publish,) = named(spans, f"{subject_for(event)} publish", trace_id)
    (process,) = named(spans, f"{subject_for(event)} process", trace_id)
    (audit_publish,) = named(spans, f"{audit_subject(SERVICE)} publish", trace_id)
    assert (publish.kind, process.kind, audit_publish.kind) == (
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.PRODUCER,
    )
    # Parent links: origin → publish → process → audit publish, and the audit message's
    # traceparent names the audit publish span itself.
    assert parent_id(publish) == origin.get_span_context().span_id
    assert parent_id(process) == span_id(publish)
    assert parent_id(audit_publish) == span_id(process)
    assert headers["traceparent"].split("-")[2] == format(span_id(audit_publish), "016x")
