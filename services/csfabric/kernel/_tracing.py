"""OpenTelemetry, set up once per process, and W3C trace context for message headers.

A trace follows an event across services only through its headers: the publisher calls
:func:`inject_headers`, the consumer :func:`extract_context` and starts its span with that
context as parent.  FastStream's telemetry middlewares do the same for handlers; they are
built here so that every service passes them the one provider of the process.

Sampling (:class:`FabricSampler`, ratio ``CSFABRIC_TRACE_SAMPLE``, default 1 = every event
traced): a span without a parent, or whose parent came in a message (a remote parent), is
kept when its trace id falls in the ratio — a pure function of the trace id, so every
service with the same ratio keeps or drops the same traces whole; a span with a local
parent follows it.  Whatever the ratio, a span marked :data:`KEEP` (a failed attempt, a
dead letter) or that calls CloudStack (``cloudstack.command``: a decision that acts) is
always kept.  A dropped span still carries its trace id on, in ``traceparent`` (flag 00),
so audit records and logs keep naming the trace.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

if TYPE_CHECKING:
    # Imported lazily at run time: each pulls in its broker client, and a service
    # needs only the one it talks to.
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
    from faststream.nats.opentelemetry import NatsTelemetryMiddleware

# W3C only, whatever OTEL_PROPAGATORS says: headers are a contract between services,
# not a per-process setting.
_PROPAGATOR = TraceContextTextMapPropagator()

# The common traceparent (version 00, no tracestate) is read without the propagator's
# generic machinery; anything else goes through the propagator.
_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_EMPTY = Context()

KEEP = "csfabric.keep"  # span attribute: record this span whatever the sampling ratio
_ALWAYS = (KEEP, "cloudstack.command")
SAMPLE_ENV = "CSFABRIC_TRACE_SAMPLE"
_RATIO_SPACE = 1 << 64


class FabricSampler(Sampler):
    """The fabric's sampling rule (module docstring); ``ratio`` may be changed at run time."""

    def __init__(self, ratio: float = 1.0) -> None:
        self.ratio = ratio

    @property
    def ratio(self) -> float:
        return self._ratio

    @ratio.setter
    def ratio(self, value: float) -> None:
        self._ratio = min(1.0, max(0.0, value))
        # As TraceIdRatioBased: the low 64 bits of the trace id against a bound.
        self._bound = round(self._ratio * _RATIO_SPACE)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        state = parent.trace_state if parent.is_valid else None
        if attributes and any(key in attributes for key in _ALWAYS):
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)
        if parent.is_valid and not parent.is_remote:
            keep = parent.trace_flags.sampled
        elif parent.is_valid and not parent.trace_flags.sampled:
            keep = False  # the origin dropped this trace: so does every hop
        else:  # a root, or a parent from a message: the ratio, on the trace's own id
            keep = ((parent.trace_id if parent.is_valid else trace_id) & (_RATIO_SPACE - 1)) < (
                self._bound
            )
        decision = Decision.RECORD_AND_SAMPLE if keep else Decision.DROP
        return SamplingResult(decision, attributes if keep else None, state)

    def get_description(self) -> str:
        return f"FabricSampler{{{self._ratio}}}"


def records(parent: Context | None) -> bool:
    """Whether a span started under ``parent`` (None: the current context) could record.

    False when tracing is not set up, or the fabric's rule drops the span: then a caller
    may skip the span and carry ``parent`` on as it is (its trace id still travels).  A
    span the rule always keeps (:data:`KEEP`, a CloudStack call) is not asked about.
    """
    if _provider is None:  # not set up here: spans only if someone set a provider
        return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    if _provider.sampler is not _sampler:
        return True
    context = trace.get_current_span(parent).get_span_context()
    if not context.is_valid:
        return _sampler.ratio > 0
    if not context.trace_flags.sampled:
        return False
    if not context.is_remote:
        return True
    return (context.trace_id & (_RATIO_SPACE - 1)) < _sampler._bound


def _ratio_from_env() -> float:
    try:
        return float(os.environ.get(SAMPLE_ENV, "1"))
    except ValueError:
        return 1.0


_sampler = FabricSampler(_ratio_from_env())
_lock = threading.Lock()
_provider: TracerProvider | None = None
_otlp_endpoints: set[str] = set()


def setup_tracing(
    service_name: str,
    otlp_endpoint: str | None = None,
    *,
    exporter: SpanExporter | None = None,
) -> TracerProvider:
    """The process's tracer provider, created and made global on the first call.

    Later calls return the same provider (OpenTelemetry allows the global provider to be
    set only once), but still attach what they bring: a new ``otlp_endpoint`` gets its
    batch exporter, and ``exporter`` (tests pass an ``InMemorySpanExporter``) is attached
    with a synchronous processor so that spans are visible as soon as they end.
    """
    global _provider
    with _lock:
        if _provider is None:
            resource = Resource.create({SERVICE_NAME: service_name})
            _provider = TracerProvider(resource=resource, sampler=_sampler)
            trace.set_tracer_provider(_provider)
        if otlp_endpoint and otlp_endpoint not in _otlp_endpoints:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint))
            )
            _otlp_endpoints.add(otlp_endpoint)
        if exporter is not None:
            _provider.add_span_processor(SimpleSpanProcessor(exporter))
        return _provider


def set_sample_ratio(ratio: float) -> None:
    """Change the fraction of traces kept (``CSFABRIC_TRACE_SAMPLE`` at start)."""
    _sampler.ratio = ratio


def sample_ratio() -> float:
    return _sampler.ratio


def get_tracer(name: str) -> trace.Tracer:
    """A tracer from our provider, or from the global one before :func:`setup_tracing`."""
    provider = _provider
    return provider.get_tracer(name) if provider is not None else trace.get_tracer(name)


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add ``traceparent`` (and ``tracestate``) of the current context; returns ``headers``.

    Nothing is added outside a valid span, so untraced publishes carry no stale parent.
    """
    _PROPAGATOR.inject(headers)
    return headers


def extract_context(headers: Mapping[str, str]) -> Context:
    """The context to parent a consumer span on; empty when headers carry no trace."""
    value = headers.get("traceparent")
    if value is None:
        return _EMPTY
    if "tracestate" not in headers and (found := _TRACEPARENT_00.fullmatch(value)):
        trace_id, span_id = int(found[1], 16), int(found[2], 16)
        if trace_id and span_id:
            flags = TraceFlags(int(found[3], 16))
            remote = SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)
            return trace.set_span_in_context(NonRecordingSpan(remote))
    return _PROPAGATOR.extract(headers)


def traceparent_of(span: trace.Span) -> str | None:
    """The W3C ``traceparent`` naming ``span``, or None for an invalid span."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def inject_span(headers: dict[str, str], span: trace.Span) -> dict[str, str]:
    """:func:`inject_headers` for a span at hand (no context lookup); returns ``headers``."""
    if (value := traceparent_of(span)) is not None:
        headers["traceparent"] = value
        if state := span.get_span_context().trace_state:
            headers["tracestate"] = state.to_header()
    return headers


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or ``None`` outside a valid span."""
    return inject_headers({}).get("traceparent")


def current_trace_id() -> str | None:
    """The current trace id as 32 lowercase hex chars, or ``None`` outside a valid span."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def telemetry_middleware(provider: TracerProvider) -> NatsTelemetryMiddleware:
    """FastStream's NATS middleware: a consumer span per message, parented on its headers."""
    from faststream.nats.opentelemetry import NatsTelemetryMiddleware

    return NatsTelemetryMiddleware(tracer_provider=provider)


def kafka_telemetry_middleware(provider: TracerProvider) -> KafkaTelemetryMiddleware:
    """The Kafka counterpart of :func:`telemetry_middleware`."""
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    return KafkaTelemetryMiddleware(tracer_provider=provider)


__all__ = [
    "KEEP",
    "SAMPLE_ENV",
    "FabricSampler",
    "current_trace_id",
    "current_traceparent",
    "extract_context",
    "get_tracer",
    "inject_headers",
    "inject_span",
    "kafka_telemetry_middleware",
    "records",
    "sample_ratio",
    "set_sample_ratio",
    "setup_tracing",
    "telemetry_middleware",
    "traceparent_of",
]
