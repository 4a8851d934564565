"""Durable, explicit-ack JetStream consumers with bounded retries and a dead-letter subject.

The loop fetches in batches and handles messages concurrently (``max_workers``), but the
events about one resource (one CloudEvent ``subject``) one at a time, in fetch order.  A
handler that fails is retried *in process*, after a backoff on the kernel clock, while
the events of the same resource behind it wait: a retry never lets a later event of that
resource overtake an earlier one.  Every message in hand is kept alive with
``in_progress`` (:mod:`.keepalive`), so neither a long handler nor a retry makes the
server hand it to a second worker.  What happens after each attempt is decided by
:func:`~.delivery.verdict` from the handler's outcome alone (:mod:`.handling`), and a
message is acked only once it was handled or its dead letter is stored (:mod:`.settling`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Generic

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import NotFoundError, ServiceUnavailableError

from csfabric.kernel._envelope import CloudEvent, parse_event
from csfabric.kernel._logs import get_logger
from csfabric.kernel._ops import Metrics
from csfabric.kernel._tracing import get_tracer
from csfabric.kernel.bus._connection import Bus
from csfabric.kernel.bus._delivery import (
    Delivery,
    Handler,
    T,
    Verdict,
    backoff,
    raw_bytes,
    verdict,
)
from csfabric.kernel.bus._dlq import DeadLetter
from csfabric.kernel.bus._handling import Event, Handling
from csfabric.kernel.bus._keepalive import KeepAlive
from csfabric.kernel.bus._options import ConsumerOptions
from csfabric.kernel.errors import EnvelopeError

log = get_logger(__name__)
# While fetches time out, how often (s) to ask whether the durable still exists.
GONE_CHECK_EVERY = 5.0


class Consumer(Handling, Generic[T]):
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
        checked_at = time.monotonic()
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
                # A deleted durable answers no pull request on some servers (the fetch
                # just times out): look for it now and then while nothing arrives.
                if fetched_at - checked_at >= GONE_CHECK_EVERY:
                    checked_at = fetched_at
                    if await self._gone():
                        sub = None
                        await self._recreate(failures := failures + 1)
                continue
            except asyncio.CancelledError:
                raise
            except NotFoundError:
                # The consumer vanished (stream recreated, or a cluster lost it): recreate.
                sub = None
                await self._recreate(failures := failures + 1)
                continue
            except Exception as exc:
                # Leader elections and restarts surface as many error types; none may end
                # the loop.  Back off and fetch again.  A 503 is also how nats-server
                # answers a pull on a durable that was deleted: then recreate it.
                failures += 1
                if isinstance(exc, ServiceUnavailableError) and await self._gone():
                    sub = None
                    await self._recreate(failures)
                    continue
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

    async def _gone(self) -> bool:
        try:
            await self.bus.js.consumer_info(self.options.stream, self.durable)
        except NotFoundError:
            return True
        except Exception:  # the server is busy or away: the next failure asks again
            return False
        return False

    async def _recreate(self, failures: int) -> None:
        log.warning("consumer %s not found, recreating", self.durable)
        await self._drop_subscription()
        await self._pause(failures)
        await self.bus.retry(self._ensure_consumer, what=f"recreate {self.durable}")

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
