"""Durable, explicit-ack JetStream consumers with bounded redelivery and a dead-letter subject.

The loop fetches in batches and handles messages concurrently (``max_workers``), but keeps
events about the same resource (same CloudEvent ``subject``) in order.  What happens to each
message is decided by :func:`~.delivery.verdict` from the handler's outcome alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode

from .bus import Bus
from .delivery import Delivery, Handler, T, Verdict, backoff, raw_bytes, verdict
from .dlq import DeadLetter, dlq_subject
from .envelope import DEFAULT_MAX_BYTES, CloudEvent, parse_event
from .errors import EnvelopeError
from .logs import redact
from .ops import Metrics
from .tracing import extract_context, get_tracer

log = logging.getLogger(__name__)


@dataclass
class ConsumerOptions:
    stream: str = "CSFABRIC_EVENTS"
    batch: int = 128
    max_workers: int = 64
    max_deliver: int = 5
    ack_wait: float = 30.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    fetch_timeout: float = 1.0
    lag_interval: float = 10.0
    max_event_bytes: int = DEFAULT_MAX_BYTES
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    extra: dict[str, Any] = field(default_factory=dict)


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
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._lag_task: asyncio.Task[None] | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._running = False
        self.handled = 0
        self.dead_lettered = 0

    def consumer_config(self) -> ConsumerConfig:
        opts = self.options
        return ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=opts.deliver_policy,
            filter_subject=self.subject,
            # The server stops one past our own limit, so the last delivery is always ours
            # to dead-letter with a reason rather than silently dropped.
            max_deliver=opts.max_deliver + 1,
            ack_wait=self.bus.clock.to_real(opts.ack_wait),
            max_ack_pending=max(opts.max_workers * 4, opts.batch * 2),
            **opts.extra,
        )

    async def start(self) -> None:
        await self.bus.retry(self._ensure_consumer, what=f"create consumer {self.durable}")
        self._running = True
        self._loop_task = asyncio.create_task(self._run(), name=f"consume:{self.durable}")
        if self.bus.metrics is not None:
            self._lag_task = asyncio.create_task(self._report_lag(self.bus.metrics))

    async def stop(self) -> None:
        """Stop fetching and wait for messages in hand to finish."""
        self._running = False
        for task in (self._loop_task, self._lag_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._drop_subscription()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

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
            await self.bus.js.consumer_info(self.options.stream, self.durable)
        except NotFoundError:
            await self.bus.js.add_consumer(self.options.stream, config)

    async def _run(self) -> None:
        opts = self.options
        sub = None
        failures = 0
        while self._running:
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
            for msg in messages:
                await self._slots.acquire()
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

    def _dispatch(self, msg: Msg) -> None:
        event: T | CloudEvent | EnvelopeError
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
        task.add_done_callback(lambda done: self._finished(done, key))

    def _finished(self, task: asyncio.Task[None], key: str | None) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if key and self._tails.get(key) is task:
            del self._tails[key]

    async def _handle(
        self,
        msg: Msg,
        event: T | CloudEvent | EnvelopeError,
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            # Per-resource order: wait for the earlier event of the same subject.
            await asyncio.gather(previous, return_exceptions=True)
        headers = msg.headers or {}
        meta = msg.metadata
        delivery = Delivery(
            subject=msg.subject,
            deliveries=meta.num_delivered or 1,
            stream=meta.stream,
            stream_seq=meta.sequence.stream if meta.sequence else None,
            headers=headers,
            raw=msg.data,
        )
        if "traceparent" in headers:
            parent = extract_context(headers)
        elif isinstance(event, CloudEvent) and event.traceparent:
            parent = extract_context({"traceparent": event.traceparent})
        else:
            parent = otel_context.Context()
        token = otel_context.attach(parent)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            with self._tracer.start_as_current_span(
                f"{msg.subject} process", kind=SpanKind.CONSUMER
            ) as span:
                span.set_attribute("messaging.destination.name", msg.subject)
                span.set_attribute("messaging.consumer.group.name", self.durable)
                try:
                    if isinstance(event, EnvelopeError):
                        raise event
                    if isinstance(event, CloudEvent):
                        span.set_attribute("cloudevents.event_id", event.id)
                    await self.handler(event, delivery)  # type: ignore[arg-type]
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    error = exc
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                await self._settle(msg, delivery, error)
        finally:
            otel_context.detach(token)
            if self.bus.metrics is not None:
                self.bus.metrics.event_in(msg.subject)
                self.bus.metrics.observe_handler(msg.subject, time.perf_counter() - started)

    async def _settle(self, msg: Msg, delivery: Delivery, error: BaseException | None) -> None:
        decision = verdict(error, delivery.deliveries, self.options.max_deliver)
        try:
            if decision is Verdict.ACK:
                await msg.ack()
                self.handled += 1
            elif decision is Verdict.RETRY:
                delay = backoff(
                    delivery.deliveries, self.options.backoff_base, self.options.backoff_cap
                )
                log.info(
                    "retrying %s in %.1fs after %s",
                    delivery.subject,
                    delay,
                    type(error).__name__,
                    extra={"deliveries": delivery.deliveries},
                )
                await msg.nak(delay=self.bus.clock.to_real(delay))
            else:
                assert error is not None
                await self.dead_letter(delivery, error)
                await msg.ack()
                self.dead_lettered += 1
        except Exception as exc:
            # The ack or nak did not reach the server: the message comes back after
            # ack_wait and the idempotency keys make the second handling harmless.
            log.warning("could not settle %s: %s", delivery.subject, type(exc).__name__)

    async def dead_letter(self, delivery: Delivery, error: BaseException) -> None:
        letter = DeadLetter(
            service=self.bus.service,
            reason=redact(str(error) or type(error).__name__),
            error=type(error).__name__,
            subject=delivery.subject,
            deliveries=delivery.deliveries,
            stream=delivery.stream,
            stream_seq=delivery.stream_seq,
            time=self.bus.clock.now(),
            original=delivery.raw,
        )
        msg_id = f"dlq:{delivery.stream}:{delivery.stream_seq}:{self.durable}"
        await self.bus.publish(
            dlq_subject(self.bus.service), delivery.raw, msg_id=msg_id, headers=letter.headers()
        )
        if self.bus.metrics is not None:
            self.bus.metrics.dead_letter(letter.error)
        log.warning(
            "dead-lettered %s after %d deliveries: %s",
            delivery.subject,
            delivery.deliveries,
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
