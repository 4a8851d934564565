"""The backbone: one NATS connection, JetStream publishing with dedupe, KV buckets, consumers.

Why nats-py directly and not FastStream subscribers on the hot path: the kernel needs
(a) a consume loop that survives every error a JetStream leader change or server restart
throws at ``fetch`` (FastStream's pull loop suppresses three error types and ends on the
rest), (b) a per-message ack / nak-with-delay / dead-letter decision taken from the error
class, and (c) throughput — ``bench/bus.py`` measures all three paths side by side.
FastStream remains the tool for Kafka and RabbitMQ feeds and for AsyncAPI docs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, PubAck, StorageType
from nats.js.errors import (
    BucketNotFoundError,
    ServiceUnavailableError,
)
from nats.js.kv import KeyValue
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from csfabric.kernel._clock import Clock, RealClock
from csfabric.kernel._envelope import CloudEvent, subject_for
from csfabric.kernel._logs import get_logger
from csfabric.kernel._ops import Metrics
from csfabric.kernel._settings import FabricSettings, StreamLimits
from csfabric.kernel._tracing import extract_context, get_tracer, inject_span, records
from csfabric.kernel.bus._retry import RETRYABLE as _RETRYABLE
from csfabric.kernel.bus._retry import T, retry_broker
from csfabric.kernel.bus._streams import ensure_streams
from csfabric.kernel.errors import PermanentError, TransientError

log = get_logger(__name__)

MSG_ID = "Nats-Msg-Id"
# Room left in max_payload for the headers of a message.
HEADER_ROOM = 8192  # room for the Csfabric-Dlq-* headers of a dead letter cut to fit


# What JetStream answers (503, err_code 10077) when a DiscardPolicy.NEW stream is at a limit.
_FULL = ("maximum bytes exceeded", "maximum messages exceeded", "maximum messages per subject")


class StreamFullError(TransientError):
    """The stream refused the message: it is at its max_bytes/max_msgs (``DiscardPolicy.NEW``).

    Back-pressure, not a broker hiccup, so it is raised at once instead of retried: the
    caller keeps the message (webhook 503, feed nak/pause) and tries again later.
    """


def _stream_full(exc: ServiceUnavailableError) -> bool:
    return any(text in (exc.description or "") for text in _FULL)


class Bus:
    """A service's handle on the backbone.  Create with :meth:`connect`."""

    def __init__(
        self,
        nc: Client,
        *,
        service: str,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        publish_timeout: float = 5.0,
        publish_attempts: int = 12,
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=publish_timeout)
        self.service = service
        self.clock = clock or RealClock()
        self.metrics = metrics
        self.publish_timeout = publish_timeout
        self.publish_attempts = publish_attempts
        self._tracer = get_tracer("csfabric.bus")

    @classmethod
    async def connect(
        cls,
        servers: str | list[str] | None = None,
        *,
        service: str,
        settings: FabricSettings | None = None,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        create_streams: bool = True,
        stream_limits: StreamLimits | None = None,
        **options: Any,
    ) -> Bus:
        """Connect (reconnecting forever), and create the contract streams unless told not to."""
        settings = settings or FabricSettings()
        urls = servers if servers is not None else settings.nats_servers()
        nc = await nats.connect(
            servers=urls,
            name=f"csfabric-{service}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            connect_timeout=options.pop("connect_timeout", 5),
            allow_reconnect=True,
            error_cb=_log_error,
            disconnected_cb=_log_disconnect,
            reconnected_cb=_log_reconnect,
            **options,
        )
        bus = cls(nc, service=service, clock=clock, metrics=metrics)
        if create_streams:
            await bus.retry(lambda: ensure_streams(bus.js, stream_limits), what="create streams")
        return bus

    async def close(self) -> None:
        if not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception:  # already gone: closing is all that is left
                await self.nc.close()

    async def retry(self, call: Callable[[], Awaitable[T]], *, what: str) -> T:
        """Await ``call()`` again after broker hiccups (exponential backoff, bounded)."""
        return await retry_broker(call, what=what, attempts=self.publish_attempts)

    async def publish(
        self,
        subject: str,
        payload: bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> PubAck:
        """JetStream publish, retried on broker hiccups; ``msg_id`` makes retries harmless.

        Runs in a PRODUCER span (so audit records and dead letters show up in the trace
        that caused them) whose ``traceparent`` goes into the headers; a ``traceparent``
        the caller passes in ``headers`` is the span's parent.
        """
        carried = dict(headers or {})
        parent = extract_context(carried) if "traceparent" in carried else None
        if not records(parent):  # dropped by the sampling rule: pass the trace on as it is
            span = trace.get_current_span(parent)
            return await self._send(subject, payload, msg_id, inject_span(carried, span))
        span = self._tracer.start_span(f"{subject} publish", parent, SpanKind.PRODUCER)
        return await self._traced(span, parent, subject, payload, msg_id, carried)

    async def publish_event(self, event: CloudEvent, subject: str | None = None) -> PubAck:
        """Publish a CloudEvent with its id as ``Nats-Msg-Id`` and the current trace context."""
        target = subject or subject_for(event)
        traced = records(None)
        if traced:
            span = self._tracer.start_span(f"{target} publish", kind=SpanKind.PRODUCER)
        else:  # dropped by the sampling rule: the current trace (if any) goes on as it is
            span = trace.get_current_span()
        headers = inject_span({}, span)
        trace_ctx = None  # the event takes the current trace unless it carries its own
        if event.traceparent is None and "traceparent" in headers:
            trace_ctx = (headers["traceparent"], headers.get("tracestate"))
        try:
            payload = event.to_json(trace_ctx)
        except BaseException:
            if traced:
                span.end()
            raise
        if not traced:
            return await self._send(target, payload, event.id, headers)
        return await self._traced(span, None, target, payload, event.id, headers)

    async def _traced(
        self,
        span: Span,
        parent: Context | None,
        subject: str,
        payload: bytes,
        msg_id: str | None,
        headers: dict[str, str],
    ) -> PubAck:
        """``_send`` with ``span`` current (what ``start_as_current_span`` did, for less)."""
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            return await self._send(subject, payload, msg_id, inject_span(headers, span))
        except Exception as exc:
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            otel_context.detach(token)
            span.end()

    async def _send(
        self, subject: str, payload: bytes, msg_id: str | None, headers: dict[str, str]
    ) -> PubAck:
        if msg_id is not None:
            headers[MSG_ID] = msg_id

        # Over NATS's max_payload no retry can help: say so instead of failing forever.
        # (js.publish, not publish_async: the latter keeps a pending slot for good when the
        # send itself raises, e.g. during a long reconnect, until publishing stalls.)
        limit = self.nc.max_payload - HEADER_ROOM
        if len(payload) > limit:
            raise PermanentError(
                f"message for {subject} is {len(payload)} bytes; NATS accepts at most {limit}"
            )

        async def send() -> PubAck:
            try:
                return await self.js.publish(subject, payload, headers=headers or None)
            except ServiceUnavailableError as exc:
                if _stream_full(exc):
                    raise StreamFullError(f"publish {subject}: {exc.description}") from exc
                raise

        try:  # the first attempt without the retry loop: most publishes need no other
            ack = await send()
        except _RETRYABLE as exc:
            what, attempts = f"publish {subject}", self.publish_attempts
            if attempts <= 1:
                raise TransientError(f"{what}: NATS unavailable after 1 attempts") from exc
            log.debug("%s: attempt 1 failed (%s), retrying", what, type(exc).__name__)
            await asyncio.sleep(0.1)
            ack = await retry_broker(send, what=what, attempts=attempts, failed=1)
        if self.metrics is not None:
            self.metrics.event_out(subject)
        return ack

    async def key_value(
        self, bucket: str, *, ttl: float | None = None, history: int = 1, replicas: int = 1
    ) -> KeyValue:
        """Open a KV bucket, creating it (file storage) when missing."""

        async def open_or_create() -> KeyValue:
            try:
                return await self.js.key_value(bucket)
            except BucketNotFoundError:
                return await self.js.create_key_value(
                    KeyValueConfig(
                        bucket=bucket,
                        history=history,
                        ttl=ttl,
                        storage=StorageType.FILE,
                        replicas=replicas,
                    )
                )

        kv: KeyValue = await self.retry(open_or_create, what=f"open KV {bucket}")
        return kv


async def _log_error(exc: Exception) -> None:
    log.warning("nats: %s", exc)


async def _log_disconnect() -> None:
    log.warning("nats: disconnected, reconnecting")


async def _log_reconnect() -> None:
    log.info("nats: reconnected")


__all__ = ["MSG_ID", "Bus", "StreamFullError"]
