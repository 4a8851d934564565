"""The fabric's sampling rule: whole traces by trace id, errors and CloudStack calls always."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from csfabric.kernel._tracing import (
    KEEP,
    FabricSampler,
    extract_context,
    get_tracer,
    inject_headers,
    records,
    sample_ratio,
    set_sample_ratio,
    setup_tracing,
)
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


def traceparent(trace_low: int, sampled: bool = True) -> str:
    flags = "01" if sampled else "00"
    return f"00-{'1' * 16}{trace_low:016x}-00f067aa0ba902b7-{flags}"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    setup_tracing("test-sampling", exporter=exporter)
    before = sample_ratio()
    yield exporter
    set_sample_ratio(before)
    exporter.shutdown()


def test_the_ratio_keeps_or_drops_a_remote_trace_by_its_id_alone() -> None:
    sampler = FabricSampler(0.25)
    kept = extract_context({"traceparent": traceparent(1)})  # far below a quarter of 2**64
    dropped = extract_context({"traceparent": traceparent(2**63)})  # half-way: above
    for _ in range(3):  # the same answer every time, in every service with this ratio
        assert sampler.should_sample(kept, 0, "x").decision is Decision.RECORD_AND_SAMPLE
        assert sampler.should_sample(dropped, 0, "x").decision is Decision.DROP


def test_an_unsampled_origin_is_dropped_but_errors_and_cloudstack_calls_are_kept() -> None:
    sampler = FabricSampler(1.0)
    unsampled = extract_context({"traceparent": traceparent(1, sampled=False)})
    assert sampler.should_sample(unsampled, 0, "x").decision is Decision.DROP
    for always in ({KEEP: True}, {"cloudstack.command": "deployVirtualMachine"}):
        result = sampler.should_sample(unsampled, 0, "x", attributes=always)
        assert result.decision is Decision.RECORD_AND_SAMPLE


def test_a_local_child_follows_its_parent_whatever_the_ratio(
    exporter: InMemorySpanExporter,
) -> None:
    set_sample_ratio(0.0)
    tracer = get_tracer(__name__)
    with tracer.start_as_current_span("root") as root:  # a root: the ratio drops it
        assert not root.is_recording()
        with tracer.start_as_current_span("child") as child:
            assert not child.is_recording()
        assert not records(None)
        # Still one trace: the dropped trace id travels on, marked unsampled.
        header = inject_headers({})["traceparent"]
        assert not int(header.split("-")[3], 16) & 1  # the sampled flag is off
        assert header.split("-")[1] == format(root.get_span_context().trace_id, "032x")
    set_sample_ratio(1.0)
    with tracer.start_as_current_span("root2") as root2:
        assert root2.is_recording()
        assert records(None)
        with tracer.start_as_current_span("child2", kind=SpanKind.PRODUCER) as child2:
            assert child2.is_recording()
    assert {s.name for s in exporter.get_finished_spans()} >= {"root2", "child2"}


@pytest.mark.parametrize(
    "header",
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # invalid: zero trace id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # invalid version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "garbage",
    ],
)
def test_the_quick_traceparent_reader_agrees_with_the_w3c_propagator(header: str) -> None:
    ours = trace.get_current_span(extract_context({"traceparent": header})).get_span_context()
    w3c = TraceContextTextMapPropagator().extract({"traceparent": header})
    theirs = trace.get_current_span(w3c).get_span_context()
    assert (ours.trace_id, ours.span_id, ours.trace_flags, ours.is_remote, ours.is_valid) == (
        theirs.trace_id,
        theirs.span_id,
        theirs.trace_flags,
        theirs.is_remote,
        theirs.is_valid,
    )
