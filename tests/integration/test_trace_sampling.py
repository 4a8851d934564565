"""Sampling drops whole traces, but a failure is recorded whatever the ratio.

Over a real nats-server, with the ratio at 0: a handled event leaves no span but its
audit record still names its trace; an event whose handler fails permanently leaves a
recorded CONSUMER span (marked kept, status ERROR) with the dead letter's publish inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import CloudEvent, PermanentError, action_key, make_event, subject_for
from csfabric.kernel._audit import Auditor, AuditRecord
from csfabric.kernel._tracing import KEEP, get_tracer, sample_ratio, set_sample_ratio, setup_tracing
from csfabric.kernel.bus import Bus, Consumer, Delivery, dlq_subject
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.integration._workload import eventually

pytestmark = pytest.mark.integration

SERVICE = "sampletest"


def in_trace(spans: Sequence[ReadableSpan], trace_id: str) -> list[ReadableSpan]:
    return [s for s in spans if s.context and format(s.context.trace_id, "032x") == trace_id]


async def test_a_dropped_trace_records_only_its_failure(nats_server: NatsServerProcess) -> None:
    exporter = InMemorySpanExporter()
    setup_tracing("test", exporter=exporter)
    before = sample_ratio()
    bus = await Bus.connect(nats_server.url, service=SERVICE)
    auditor = Auditor(bus)
    records: list[AuditRecord] = []
    failed: list[str] = []

    async def handler(event: CloudEvent, delivery: Delivery) -> None:
        if event.id == "sample-bad":
            failed.append(event.id)
            raise PermanentError("this one cannot be handled")
        records.append(
            await auditor.emit(
                action_key=action_key(event.id, "noop"),
                decision="no-action",
                reason="sampling test",
                input_event_ids=[event.id],
            )
        )

    consumer = Consumer(bus, "csfabric.lifecycle.sample.>", SERVICE, handler)
    good = make_event(id="sample-good", type="sample.checked", source="/tests/s", subject="g")
    bad = make_event(id="sample-bad", type="sample.checked", source="/tests/s", subject="b")
    traces: dict[str, str] = {}
    set_sample_ratio(0.0)
    try:
        await consumer.start()
        for event in (good, bad):
            # The origin is a root: the ratio drops it, and so the whole trace.
            with get_tracer(__name__).start_as_current_span("origin") as origin:
                assert not origin.is_recording()
                await bus.publish_event(event)
            traces[event.id] = format(origin.get_span_context().trace_id, "032x")
        await eventually(
            lambda: len(records) == 1 and consumer.dead_lettered == 1, within=15, what="both"
        )
        await eventually(
            lambda: in_trace(exporter.get_finished_spans(), traces[bad.id]),
            within=15,
            what="the failure's span",
        )
    finally:
        set_sample_ratio(before)
        await consumer.stop()
        await bus.close()
        spans = exporter.get_finished_spans()
        exporter.shutdown()

    assert failed == ["sample-bad"]
    # Nothing of the handled event's trace was recorded, yet its audit names that trace.
    assert in_trace(spans, traces[good.id]) == []
    assert records[0].trace_id == traces[good.id]
    failure = in_trace(spans, traces[bad.id])
    (process,) = [s for s in failure if s.kind is SpanKind.CONSUMER]
    assert process.name == f"{subject_for(bad)} process"
    assert process.status.status_code is StatusCode.ERROR
    assert (process.attributes or {}).get(KEEP) is True
    assert process.start_time is not None
    assert process.end_time is not None
    assert process.start_time < process.end_time
    (dead_letter,) = [s for s in failure if s.kind is SpanKind.PRODUCER]
    assert dead_letter.name == f"{dlq_subject(SERVICE)} publish"
    assert dead_letter.parent is not None
    assert process.context is not None
    assert dead_letter.parent.span_id == process.context.span_id
