"""OpenTelemetry, set up once per process, and W3C trace context for message headers.

A trace follows an event across services only through its headers: the publisher calls
:func:`inject_headers`, the consumer :func:`extract_context` and starts its span with that
context as parent.  FastStream's telemetry middlewares do the same for handlers; they are
built here so that every service passes them the one provider of the process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    # Imported lazily at run time: each pulls in its broker client, and a service
    # needs only the one it talks to.
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
    from faststream.nats.opentelemetry import NatsTelemetryMiddleware

# W3C only, whatever OTEL_PROPAGATORS says: headers are a contract between services,
# not a per-process setting.
_PROPAGATOR = TraceContextTextMapPropagator()

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
            _provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
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
    return _PROPAGATOR.extract(headers)


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
    "current_trace_id",
    "current_traceparent",
    "extract_context",
    "get_tracer",
    "inject_headers",
    "kafka_telemetry_middleware",
    "setup_tracing",
    "telemetry_middleware",
]
