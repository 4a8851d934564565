"""One message from delivery to settlement: order, attempts, retries, its span, its verdict.

Each message is handled to the end by one task; the events about one resource wait for
the one before them (per-resource order).  A handler that fails is retried in process,
after a backoff on the kernel clock; what happens after each attempt is decided by
:func:`~.delivery.verdict` from the handler's outcome alone.

Tracing: one CONSUMER span per attempt, child of the publisher's trace, with settling
inside it, so acks and dead letters belong to the trace that caused them.  When the
sampling rule (:mod:`csfabric.kernel._tracing`) dropped the trace, a failed attempt is
still recorded: its span is made after the fact, with the attempt's start time, marked
``KEEP``, and the dead letter is published inside it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

from nats.aio.msg import Msg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from csfabric.kernel._envelope import CloudEvent
from csfabric.kernel._tracing import KEEP, extract_context, records
from csfabric.kernel.bus._delivery import Delivery, Handler, Verdict, backoff, verdict
from csfabric.kernel.bus._settling import Settling
from csfabric.kernel.errors import EnvelopeError, RetryLater

__all__ = ["Event", "Handling"]

log = logging.getLogger("csfabric.kernel.bus.consumer")

Event = Any  # T, a CloudEvent, or the EnvelopeError that stands for an undecodable message


def _ack_fields(msg: Msg) -> tuple[str | None, int, int | None]:
    """(stream, deliveries, stream sequence) of a JetStream message.

    Read straight from the common ack subject (``$JS.ACK.<stream>.<consumer>.<delivered>.
    <stream seq>.<consumer seq>.<time>.<pending>``); ``msg.metadata`` also builds a datetime
    and two objects per message, and reads every other form.
    """
    tokens: list[str] = msg.reply.split(".") if msg.reply else []
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return tokens[2], int(tokens[4]) or 1, int(tokens[5])
    meta = msg.metadata
    return meta.stream, meta.num_delivered or 1, meta.sequence.stream if meta.sequence else None


class Handling(Settling):
    """The per-message half of a :class:`~.consumer.Consumer`."""

    handler: Handler[Any]
    retried: int
    _tracer: Tracer
    _stopping: asyncio.Event

    async def _handle(
        self, msg: Msg, event: Event, previous: asyncio.Task[float | None] | None
    ) -> float | None:
        """Handle ``msg`` to the end; returns the delay it was released with, if it was.

        A released message (the consumer is stopping) is redelivered by the server after
        that delay; the events of its resource queued behind it are released with the same
        delay, after it, so that the server's redelivery keeps their order.
        """
        if previous is not None:
            # Per-resource order: wait until the earlier event of the same subject is done.
            (before,) = await asyncio.gather(previous, return_exceptions=True)
            if isinstance(before, float):
                return await self._release(msg, before)
        if self._stopping.is_set():
            return await self._release(msg, 0.0)
        stream, deliveries, stream_seq = _ack_fields(msg)
        delivery = Delivery(
            subject=msg.subject,
            deliveries=deliveries,
            stream=stream,
            stream_seq=stream_seq,
            headers=msg.headers or {},
            raw=msg.data,
        )
        unsent = self._unsent.pop((delivery.stream, delivery.stream_seq), None)
        if unsent is None and delivery.deliveries > 2 * self.options.max_deliver:
            unsent = self._unsettled(delivery)
        if unsent is not None:
            await self._dead_letter_then_ack(msg, delivery, unsent)
            return None
        parent = self._parent(delivery.headers, event)
        traced = records(parent)  # False: the sampling rule dropped this trace
        held = 0.0  # fabric seconds this delivery has waited in hand for retries
        while True:
            started, started_ns = time.perf_counter(), time.time_ns()
            if traced:
                span = self._start_span(msg.subject, event, parent, None)
                token = otel_context.attach(trace.set_span_in_context(span, parent))
            else:  # the parent's context, so the trace id still reaches what is published
                span = trace.get_current_span(parent)
                token = otel_context.attach(parent)
            try:
                error = await self._attempt(event, delivery)
                decision = verdict(error, delivery.deliveries, self.options.max_deliver)
                if decision is Verdict.ACK:
                    await self._ack(msg, delivery)
                    return None
                assert error is not None
                if not span.is_recording():  # errors are kept whatever the sampling
                    otel_context.detach(token)
                    if traced:
                        span.end()
                    span = self._start_span(msg.subject, event, parent, started_ns)
                    traced = True
                    token = otel_context.attach(trace.set_span_in_context(span, parent))
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                wait = self._wait_for(error, held)
                if wait is not None:
                    decision = Verdict.RETRY
                if decision is Verdict.DEAD_LETTER:
                    letter = self._letter(delivery, error)
                    await self._dead_letter_then_ack(msg, delivery, letter)
                    return None
            finally:
                otel_context.detach(token)
                if traced:
                    span.end()
                if self.bus.metrics is not None:
                    self.bus.metrics.event_in(msg.subject)
                    self.bus.metrics.observe_handler(msg.subject, time.perf_counter() - started)
            opts = self.options
            delay = (
                wait
                if wait is not None
                else backoff(delivery.deliveries, opts.backoff_base, opts.backoff_cap)
            )
            log.info(
                "retrying %s in %.1fs after %s",
                delivery.subject,
                delay,
                type(error).__name__,
                extra={"deliveries": delivery.deliveries},
            )
            self.retried += 1
            if not await self._backoff(delay):
                return await self._release(msg, delay)
            held += delay
            if wait is None:  # a RetryLater wait spends none of the message's attempts
                delivery = replace(delivery, deliveries=delivery.deliveries + 1)

    @staticmethod
    def _parent(headers: dict[str, str], event: Event) -> Context:
        if "traceparent" in headers:
            return extract_context(headers)
        if isinstance(event, CloudEvent) and event.traceparent:
            return extract_context({"traceparent": event.traceparent})
        return Context()

    def _start_span(
        self, subject: str, event: Event, parent: Context, kept_since: int | None
    ) -> Span:
        """The attempt's span; ``kept_since`` (ns) makes the recorded one of a failure."""
        attributes: dict[str, Any] = {
            "messaging.destination.name": subject,
            "messaging.consumer.group.name": self.durable,
        }
        if isinstance(event, CloudEvent):
            attributes["cloudevents.event_id"] = event.id
        if kept_since is not None:
            attributes[KEEP] = True
        return self._tracer.start_span(
            f"{subject} process",
            parent,
            SpanKind.CONSUMER,
            attributes=attributes,
            start_time=kept_since,
        )

    async def _attempt(self, event: Event, delivery: Delivery) -> Exception | None:
        try:
            if isinstance(event, EnvelopeError):
                raise event
            await self.handler(event, delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return exc
        return None

    def _wait_for(self, error: Exception, held: float) -> float | None:
        """How long to wait before a retry that spends no attempt (a :class:`RetryLater`
        that still fits in ``max_hold``), or None: the attempt counts as usual."""
        if not isinstance(error, RetryLater):
            return None
        if held + error.after > self.options.max_hold:
            return None
        # At least a moment, so a RetryLater(0) cannot spin.
        return max(error.after, self.options.backoff_base)

    async def _backoff(self, delay: float) -> bool:
        """Wait ``delay`` fabric seconds; False when the consumer started stopping meanwhile."""
        if self._stopping.is_set():
            return False
        try:
            await self.bus.clock.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            return True
        return False
