"""Durable, explicit-ack JetStream consumers with bounded retries and a dead-letter subject.

The loop fetches in batches and handles messages concurrently (``max_workers``), but the
events about one resource (one CloudEvent ``subject``) one at a time, in fetch order.  A
handler that fails is retried *in process*, after a backoff on the kernel clock, while
the events of the same resource behind it wait: a retry never lets a later event of that
resource overtake an earlier one.  Every message in hand is kept alive with
``in_progress`` (:mod:`.keepalive`), so neither a long handler nor a retry makes the
server hand it to a second worker.  What happens after each attempt is decided by
:func:`~.delivery.verdict` from the handler's outcome alone, and a message is acked only
once it was handled or its dead letter is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Generic

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry import context as otel_context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from csfabric.kernel._envelope import DEFAULT_MAX_BYTES, CloudEvent, parse_event
from csfabric.kernel._logs import clip
from csfabric.kernel._ops import Metrics
from csfabric.kernel._settings import FabricSettings
from csfabric.kernel._tracing import extract_context, get_tracer
from csfabric.kernel.bus._connection import Bus
from csfabric.kernel.bus._delivery import (
    BACKOFF_BASE,
    BACKOFF_CAP,
    MAX_DELIVER,
    Delivery,
    Handler,
    T,
    Verdict,
    backoff,
    raw_bytes,
    verdict,
)
from csfabric.kernel.bus._dlq import DeadLetter, dlq_subject
from csfabric.kernel.bus._keepalive import KeepAlive
from csfabric.kernel.errors import EnvelopeError, RetryLater

log = logging.getLogger(__name__)

# Dead letters decided but not stored (the DLQ publish failed), by (stream, sequence): the
# redelivery stores them without calling the handler again.  Bounded: one that is
# forgotten is merely handled once more, and dead-lettered at once if it fails again.
_UNSENT_MAX = 1024

Event = Any  # T, a CloudEvent, or the EnvelopeError that stands for an undecodable message


@dataclass
class ConsumerOptions:
    """How a :class:`Consumer` fetches, retries and dead-letters.

    ``max_deliver`` bounds the handler attempts; ``ack_wait`` and the backoff are fabric
    seconds (the server gets ``ack_wait`` in wall time).  Services build theirs with
    :meth:`from_settings`, so that ``CSFABRIC_MAX_DELIVER`` applies.
    """

    stream: str = "CSFABRIC_EVENTS"
    batch: int = 128
    max_workers: int = 64
    max_deliver: int = MAX_DELIVER
    ack_wait: float = 30.0
    # Longest a message is kept alive in hand; then the server may redeliver it elsewhere.
    # Above any sane handler: the CloudStack client waits at most 300 s for a job.
    max_hold: float = 900.0
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    fetch_timeout: float = 1.0
    lag_interval: float = 10.0
    max_event_bytes: int = DEFAULT_MAX_BYTES
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: FabricSettings, **overrides: Any) -> ConsumerOptions:
        """Options that follow the shared settings (``CSFABRIC_MAX_DELIVER``,
        ``CSFABRIC_MAX_EVENT_BYTES``); ``overrides`` win."""
        values: dict[str, Any] = {
            "max_deliver": settings.max_deliver,
            "max_event_bytes": settings.max_event_bytes,
        }
        return cls(**(values | overrides))


class Consumer(Generic[T]):
    """One durable consumer on one subject filter; start with :meth:`start`.

    By default payloads are parsed as CloudEvents (a bad one is dead-lettered with the
    reason); pass ``decode=raw_bytes`` to consume other payloads unchanged.
    """

    def __init__(
        self,
        bus: Bus,
        subject: str,
        durable: str,
        handler: Handler[T],
        options: ConsumerOptions | None = None,
        *,
        decode: Callable[[bytes], T] | None = None,
    ) -> None:
        self.bus = bus
        self._decode = decode
        self.subject = subject
        self.durable = durable
        self.handler = handler
        self.options = options or ConsumerOptions()
        self._tracer = get_tracer("csfabric.consumer")
        self._slots = asyncio.Semaphore(self.options.max_workers)
        self._tails: dict[str, asyncio.Task[float | None]] = {}
        self._tasks: set[asyncio.Task[float | None]] = set()
        clock, opts = self.bus.clock, self.options
        self._alive = KeepAlive(clock.to_real(opts.ack_wait) / 3, clock.to_real(opts.max_hold))
        self._unsent: OrderedDict[tuple[str | None, int | None], DeadLetter] = OrderedDict()
        self._stopping = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._alive_task: asyncio.Task[None] | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._running = False
        self.handled = 0
        self.dead_lettered = 0
        self.retried = 0

    def consumer_config(self) -> ConsumerConfig:
        opts = self.options
        return ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=opts.deliver_policy,
            filter_subject=self.subject,
            # Unlimited on the server: the bound is ours (``opts.max_deliver`` attempts), and
            # a message whose dead letter could not be stored must come back, however many
            # deliveries that takes, rather than be dropped by the server.
            max_deliver=-1,
            ack_wait=self.bus.clock.to_real(opts.ack_wait),
            max_ack_pending=max(opts.max_workers * 4, opts.batch * 2),
            **opts.extra,
        )

    async def start(self) -> None:
        await self.bus.retry(self._ensure_consumer, what=f"create consumer {self.durable}")
        self._running = True
        self._stopping.clear()
        self._alive_task = asyncio.create_task(self._alive.run(), name=f"alive:{self.durable}")
        self._loop_task = asyncio.create_task(self._run(), name=f"consume:{self.durable}")
        if self.bus.metrics is not None:
            self._lag_task = asyncio.create_task(self._report_lag(self.bus.metrics))

    async def stop(self) -> None:
        """Stop fetching and settle the messages in hand.

        Running handlers finish; a message waiting for a retry, and the events of its
        resource behind it, are released at once (nak with the remaining backoff) so that
        the server redelivers them later, in order.
        """
        self._running = False
        self._stopping.set()
        for task in (self._loop_task, self._lag_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._drop_subscription()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._alive_task is not None:
            self._alive_task.cancel()
            await asyncio.gather(self._alive_task, return_exceptions=True)

    async def lag(self) -> int:
        info = await self.bus.js.consumer_info(self.options.stream, self.durable)
        return int(info.num_pending or 0)

    async def _report_lag(self, metrics: Metrics) -> None:
        # Scrapes happen in wall time, so this samples in wall time, not fabric time.
        while True:
            with contextlib.suppress(Exception):
                metrics.set_lag(self.options.stream, self.durable, await self.lag())
            await asyncio.sleep(self.options.lag_interval)

    async def _ensure_consumer(self) -> None:
        config = self.consumer_config()
        try:
            info = await self.bus.js.consumer_info(self.options.stream, self.durable)
        except NotFoundError:
            await self.bus.js.add_consumer(self.options.stream, config)
            return
        # A consumer made by an older release (server max_deliver = ours + 1) would drop
        # a message whose dead letter failed: bring the bounds the server keeps up to date.
        have = info.config
        if (
            have.max_deliver != config.max_deliver
            or abs((have.ack_wait or 0.0) - (config.ack_wait or 0.0)) > 1e-3
        ):
            update = replace(have, max_deliver=config.max_deliver, ack_wait=config.ack_wait)
            try:
                await self.bus.js.add_consumer(self.options.stream, update)
            except NotFoundError:
                raise
            except Exception as exc:  # e.g. a server that refuses the edit: keep what is
                log.warning("could not update consumer %s: %s", self.durable, exc)

    async def _run(self) -> None:
        opts = self.options
        sub = None
        failures = 0
        while self._running:
            # Every message of the fetch was delivered after this instant: the keep-alive
            # counts from here, so none can reach ack_wait before its first touch.
            fetched_at = time.monotonic()
            try:
                if sub is None:
                    sub = self._sub = await self.bus.js.pull_subscribe_bind(
                        durable=self.durable, stream=opts.stream
                    )
                messages = await sub.fetch(opts.batch, timeout=opts.fetch_timeout)
                failures = 0
            except TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except NotFoundError:
                # The consumer vanished (stream recreated, or a cluster lost it): recreate.
                log.warning("consumer %s not found, recreating", self.durable)
                sub = None
                await self._drop_subscription()
                await self._pause(failures := failures + 1)
                await self.bus.retry(self._ensure_consumer, what=f"recreate {self.durable}")
                continue
            except Exception as exc:
                # Leader elections and restarts surface as many error types; none may end
                # the loop.  Back off and fetch again.
                failures += 1
                log.info("fetch on %s failed (%s), retrying", self.durable, type(exc).__name__)
                await self._pause(failures)
                continue
            self._alive.hold(messages, fetched_at)
            for index, msg in enumerate(messages):
                try:
                    await self._slots.acquire()
                except asyncio.CancelledError:
                    # Stopping with part of a batch not yet dispatched: those go through
                    # their resource's chain too and are released behind it, in order.
                    for rest in messages[index:]:
                        self._dispatch(rest, slot=False)
                    raise
                self._dispatch(msg)

    async def _drop_subscription(self) -> None:
        # nats-py's fetch takes queued messages without task_done(), so a connection
        # drain (Bus.close) would wait its full 30 s timeout on a pull subscription that
        # holds leftovers from a fetch that timed out.  Unsubscribing drops it; messages
        # it held were never handled and come back after ack_wait.
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _pause(self, failures: int) -> None:
        await asyncio.sleep(min(2.0, 0.05 * 2**failures))

    def _dispatch(self, msg: Msg, *, slot: bool = True) -> None:
        event: Event
        try:
            if self._decode is not None:
                event = self._decode(msg.data)
            else:
                event = parse_event(msg.data, max_bytes=self.options.max_event_bytes)
        except EnvelopeError as exc:
            event = exc
        except Exception as exc:  # a decoder bug must dead-letter, not end the fetch loop
            event = EnvelopeError(f"undecodable message ({type(exc).__name__}: {exc})")
        key = event.subject or event.id if isinstance(event, CloudEvent) else None
        previous = self._tails.get(key) if key else None
        task = asyncio.create_task(self._handle(msg, event, previous))
        self._tasks.add(task)
        if key:
            self._tails[key] = task
        task.add_done_callback(lambda done: self._finished(done, msg, key, slot))

    def _finished(
        self, task: asyncio.Task[float | None], msg: Msg, key: str | None, slot: bool
    ) -> None:
        self._tasks.discard(task)
        self._alive.drop(msg)
        if slot:
            self._slots.release()
        if key and self._tails.get(key) is task:
            del self._tails[key]

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
        meta = msg.metadata
        delivery = Delivery(
            subject=msg.subject,
            deliveries=meta.num_delivered or 1,
            stream=meta.stream,
            stream_seq=meta.sequence.stream if meta.sequence else None,
            headers=msg.headers or {},
            raw=msg.data,
        )
        unsent = self._unsent.pop((delivery.stream, delivery.stream_seq), None)
        if unsent is None and delivery.deliveries > 2 * self.options.max_deliver:
            unsent = self._unsettled(delivery)
        if unsent is not None:
            await self._dead_letter_then_ack(msg, delivery, unsent)
            return None
        held = 0.0  # fabric seconds this delivery has waited in hand for retries
        while True:
            with self._span(msg, event, delivery) as span:
                error = await self._attempt(event, delivery, span)
                decision = verdict(error, delivery.deliveries, self.options.max_deliver)
                if decision is Verdict.ACK:
                    await self._ack(msg, delivery)
                    return None
                assert error is not None
                wait = self._wait_for(error, held)
                if wait is not None:
                    decision = Verdict.RETRY
                if decision is Verdict.DEAD_LETTER:
                    letter = self._letter(delivery, error)
                    await self._dead_letter_then_ack(msg, delivery, letter)
                    return None
            delay = (
                wait
                if wait is not None
                else backoff(
                    delivery.deliveries, self.options.backoff_base, self.options.backoff_cap
                )
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

    @contextlib.contextmanager
    def _span(self, msg: Msg, event: Event, delivery: Delivery) -> Iterator[Span]:
        """One CONSUMER span per attempt, child of the publisher's trace; settling happens
        inside it, so acks and dead letters belong to the trace that caused them."""
        headers = delivery.headers
        if "traceparent" in headers:
            parent = extract_context(headers)
        elif isinstance(event, CloudEvent) and event.traceparent:
            parent = extract_context({"traceparent": event.traceparent})
        else:
            parent = otel_context.Context()
        token = otel_context.attach(parent)
        started = time.perf_counter()
        try:
            with self._tracer.start_as_current_span(
                f"{msg.subject} process", kind=SpanKind.CONSUMER
            ) as span:
                span.set_attribute("messaging.destination.name", msg.subject)
                span.set_attribute("messaging.consumer.group.name", self.durable)
                yield span
        finally:
            otel_context.detach(token)
            if self.bus.metrics is not None:
                self.bus.metrics.event_in(msg.subject)
                self.bus.metrics.observe_handler(msg.subject, time.perf_counter() - started)

    async def _attempt(self, event: Event, delivery: Delivery, span: Span) -> Exception | None:
        try:
            if isinstance(event, EnvelopeError):
                raise event
            if isinstance(event, CloudEvent):
                span.set_attribute("cloudevents.event_id", event.id)
            await self.handler(event, delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
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

    async def _ack(self, msg: Msg, delivery: Delivery) -> None:
        try:
            await msg.ack()
            self.handled += 1
        except Exception as exc:
            # The ack did not reach the server: the message comes back after ack_wait and
            # the idempotency keys make the second handling harmless.
            log.warning("could not ack %s: %s", delivery.subject, type(exc).__name__)

    async def _release(self, msg: Msg, delay: float) -> float:
        """Nak: the server redelivers ``msg`` after ``delay`` fabric seconds."""
        try:
            await msg.nak(delay=self.bus.clock.to_real(delay))
        except Exception as exc:  # not naked: it comes back after ack_wait instead
            log.warning("could not release %s: %s", msg.subject, type(exc).__name__)
        return float(delay)

    async def _dead_letter_then_ack(self, msg: Msg, delivery: Delivery, letter: DeadLetter) -> None:
        """Ack only once the dead letter is stored; else nak, so that it comes back."""
        try:
            await self._store(delivery, letter)
        except Exception as exc:
            key = (delivery.stream, delivery.stream_seq)
            self._unsent[key] = letter
            while len(self._unsent) > _UNSENT_MAX:
                self._unsent.popitem(last=False)
            delay = backoff(
                delivery.deliveries, self.options.backoff_base, self.options.backoff_cap
            )
            log.warning(
                "could not store the dead letter of %s (%s); redelivery in %.0fs",
                delivery.subject,
                type(exc).__name__,
                delay,
            )
            await self._release(msg, delay)
            return
        try:
            await msg.ack()
            self.dead_lettered += 1
        except Exception as exc:
            # Redelivered after ack_wait: dead-lettered again under the same Nats-Msg-Id,
            # which the DLQ stream's duplicate window keeps to one record.
            log.warning("could not ack %s: %s", delivery.subject, type(exc).__name__)

    def _letter(self, delivery: Delivery, error: BaseException) -> DeadLetter:
        return DeadLetter(
            service=self.bus.service,
            reason=clip(str(error) or type(error).__name__, 1500, one_line=True),
            error=type(error).__name__,
            subject=delivery.subject,
            deliveries=delivery.deliveries,
            stream=delivery.stream,
            stream_seq=delivery.stream_seq,
            time=self.bus.clock.now(),
            original=b"",  # the bytes are the delivery's: not kept twice in memory
        )

    def _unsettled(self, delivery: Delivery) -> DeadLetter:
        """The dead letter of a message delivered far past the budget without being settled.

        The server bound is unlimited, so this is what bounds a message that ends the
        process each time it is handled (or whose dead letter the replica that decided it
        could not store, and that another replica now sees, without the reason).
        """
        return DeadLetter(
            service=self.bus.service,
            reason=(
                f"delivered {delivery.deliveries} times without being settled: the handler "
                "may end the process, or an earlier dead letter could not be stored"
            ),
            error="RedeliveryLimit",
            subject=delivery.subject,
            deliveries=delivery.deliveries,
            stream=delivery.stream,
            stream_seq=delivery.stream_seq,
            time=self.bus.clock.now(),
            original=b"",
        )

    async def dead_letter(self, delivery: Delivery, error: BaseException) -> None:
        """Publish the dead letter of ``delivery``; raises when it could not be stored."""
        await self._store(delivery, self._letter(delivery, error))

    async def _store(self, delivery: Delivery, letter: DeadLetter) -> None:
        msg_id = f"dlq:{delivery.stream}:{delivery.stream_seq}:{self.durable}"
        await self.bus.publish(
            dlq_subject(self.bus.service), delivery.raw, msg_id=msg_id, headers=letter.headers()
        )
        if self.bus.metrics is not None:
            self.bus.metrics.dead_letter(letter.error)
        log.warning(
            "dead-lettered %s after %d deliveries: %s",
            letter.subject,
            letter.deliveries,
            letter.reason,
        )


__all__ = [
    "Consumer",
    "ConsumerOptions",
    "Delivery",
    "Handler",
    "Verdict",
    "backoff",
    "raw_bytes",
    "verdict",
]
