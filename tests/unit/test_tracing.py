"""Trace context survives a trip through message headers."""

from __future__ import annotations

import re

import pytest
from csfabric.kernel._tracing import (
    current_trace_id,
    current_traceparent,
    extract_context,
    get_tracer,
    inject_headers,
    kafka_telemetry_middleware,
    setup_tracing,
    telemetry_middleware,
)
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing("test-tracing", exporter=exporter)
    return exporter


def test_setup_is_idempotent_and_global() -> None:
    first = setup_tracing("test-tracing")
    assert setup_tracing("another-name") is first
    assert trace.get_tracer_provider() is first


def test_injected_headers_parent_a_child_in_the_same_trace(
    exporter: InMemorySpanExporter,
) -> None:
    tracer = get_tracer(__name__)
    with tracer.start_as_current_span("publish"):
        headers = inject_headers({"content-type": "application/json"})

    assert current_trace_id() is None  # the consumer side starts with no span
    with tracer.start_as_current_span("consume", context=extract_context(headers)):
        pass

    spans = {span.name: span for span in exporter.get_finished_spans()}
    publish, consume = spans["publish"], spans["consume"]
    assert publish.context is not None
    assert consume.context is not None
    assert consume.context.trace_id == publish.context.trace_id
    assert consume.parent is not None
    assert consume.parent.span_id == publish.context.span_id
    assert headers["content-type"] == "application/json"


def test_current_ids_inside_and_outside_a_span(exporter: InMemorySpanExporter) -> None:
    assert current_trace_id() is None
    assert current_traceparent() is None
    assert inject_headers({}) == {}

    with get_tracer(__name__).start_as_current_span("work") as span:
        trace_id = current_trace_id()
        traceparent = current_traceparent()

    assert trace_id is not None
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert trace_id == format(span.get_span_context().trace_id, "032x")
    assert traceparent is not None
    # Flags: sampled (01), plus the W3C level-2 "random trace id" bit (02) on newer SDKs.
    assert re.fullmatch(rf"00-{trace_id}-[0-9a-f]{{16}}-0[13]", traceparent)


def test_empty_headers_extract_to_no_parent() -> None:
    context = extract_context({})
    assert not trace.get_current_span(context).get_span_context().is_valid


def test_faststream_middlewares_use_the_provider() -> None:
    provider = setup_tracing("test-tracing")
    assert isinstance(telemetry_middleware(provider), NatsTelemetryMiddleware)
    assert isinstance(kafka_telemetry_middleware(provider), KafkaTelemetryMiddleware)
