"""CloudStack's RabbitMQ feed: our own durable queue on its topic exchange, ack after store.

CloudStack's RabbitMQ plugin publishes to one durable topic exchange and declares no
queues, so the service declares and binds its own durable queue: events published while
ingest is down wait there.  A message is acked only once :meth:`Pipeline.ingest` returned,
i.e. JetStream holds the event (or its dead letter); a crash before that leaves it unacked,
RabbitMQ delivers it again, and ``Nats-Msg-Id`` (the event id) makes the second store a
no-op.

Failures are retried here, in process, with the message unacked and its resource's chain
held, so a later message of the same resource never overtakes a failing one (a nack-requeue
would let it).  "NATS is away" (:class:`TransientError`) is retried for as long as it lasts
(back-pressure: the queue fills, nothing is dropped); any other error ``max_attempts``
times in all, then the message is dead-lettered and acked.  It is acked only once handled
or its dead letter is stored; acks go out once per loop turn (:class:`~.amqp_acks.InOrderAcks`).

Why aio-pika and not FastStream's RabbitBroker: this feed needs exactly three things —
the exchange/queue/bindings declared from settings at runtime, manual ack/nack around an
awaited call, and reconnection that restores the consumer — and ``connect_robust`` gives
all three in a few lines.  A RabbitBroker would add a second application lifecycle, its own
logging and ack policy inside a service the kernel runtime already runs, and the simulator
that plays CloudStack already publishes with aio-pika.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
    ConsumerTag,
)

from csfabric.cloudstack import NativeMessage
from csfabric.ingest.feeds.amqp_acks import InOrderAcks
from csfabric.ingest.handlers import Pipeline
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel import TransientError
from csfabric.kernel.bus import FEED_RETRY_CAP, MAX_DELIVER

__all__ = ["AmqpFeed", "start_amqp"]

log = logging.getLogger(__name__)

DEFAULT_PREFETCH = 256
DEFAULT_MAX_ATTEMPTS = MAX_DELIVER  # as the Kafka feed's, incl. the first
MAX_RETRY_PAUSE = FEED_RETRY_CAP


class AmqpFeed:
    """One consumer on ``settings.amqp_queue``; :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        pipeline: Pipeline,
        settings: IngestSettings,
        *,
        prefetch: int = DEFAULT_PREFETCH,
        retry_pause: float = 1.0,
        max_retry_pause: float = MAX_RETRY_PAUSE,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.pipeline = pipeline
        self.settings = settings
        self.prefetch = prefetch
        self.retry_pause = retry_pause
        self.max_retry_pause = max_retry_pause
        self.max_attempts = max_attempts
        self.acked = 0
        self.retries = 0  # failed attempts that were tried again (any kind)
        self.dead_lettered = 0  # given up on after max_attempts, letter stored, acked
        self._connection: AbstractRobustConnection | None = None
        self._queue: AbstractQueue | None = None
        self._tag: ConsumerTag | None = None
        # Per resource, the last message still being handled: the next one for the same
        # resource waits for it, so VM.CREATE Started/Completed reach JetStream in order.
        self._tails: dict[str, asyncio.Task[None]] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._acks = InOrderAcks(self)

    async def start(self) -> None:
        url = self.settings.amqp_url
        if not url:
            raise ValueError("AMQP feed needs settings.amqp_url")
        # Robust: after a broker restart it reconnects and re-declares the exchange, queue,
        # bindings and consumer by itself; unacked messages come back from the queue.
        connection = await aio_pika.connect_robust(url, client_properties=_client_properties())
        try:
            channel: AbstractRobustChannel = await connection.channel()
            # Bounded prefetch: at most this many events in memory and in flight to NATS.
            await channel.set_qos(prefetch_count=self.prefetch)
            # CloudStack declares the same durable topic exchange; declaring it here too is
            # idempotent and lets dev and tests run without CloudStack.
            exchange = await channel.declare_exchange(
                self.settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(self.settings.amqp_queue, durable=True)
            for pattern in self.settings.amqp_binding_patterns() or ["#"]:
                await queue.bind(exchange, routing_key=pattern)
            self._tag = await queue.consume(self._on_message)
        except BaseException:
            await connection.close()
            raise
        self._connection, self._queue = connection, queue
        log.info(
            "amqp feed consuming %s from exchange %s",
            self.settings.amqp_queue,
            self.settings.amqp_exchange,
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking messages, let those in hand finish for ``grace`` s, then disconnect.

        Whatever is still unacked after that goes back to the queue when the channel
        closes, so ``grace=0`` behaves like a crash and loses nothing either.
        """
        if self._queue is not None and self._tag is not None:
            with contextlib.suppress(Exception):  # the channel may already be gone
                await self._queue.cancel(self._tag)
        self._queue = self._tag = None
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace)
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        await self._acks.flush_now()  # what was handled is acked before the channel closes
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._connection = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # Deliveries arrive (and this runs) in queue order; chaining per resource before
        # the first await keeps that order per resource while others run concurrently.
        key = _order_key(message.routing_key)
        self._acks.arrived(message)
        previous = self._tails.get(key)
        task = asyncio.create_task(self._handle(message, previous), name=f"amqp:{key}")
        self._tails[key] = task
        self._inflight.add(task)
        task.add_done_callback(lambda t: self._forget(key, t))

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._tails.get(key) is task:
            del self._tails[key]

    async def _handle(
        self, message: AbstractIncomingMessage, previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        msg = NativeMessage(message.body, "amqp", routing_key=message.routing_key)
        attempts = 0  # failures that count: neither "NATS away" nor a dead-letter failure
        failures = 0  # consecutive failures of any kind, for the backoff
        error: BaseException | None = None  # set once attempts are used up: dead-letter it
        while True:
            try:
                if error is None:
                    await self.pipeline.ingest(msg)
                else:
                    await self.pipeline.dead_letter(msg, error, attempts)
                    self.dead_lettered += 1
                break
            except TransientError as exc:
                # The bus is away: not the message's fault, so its attempts are kept.
                log.warning("amqp %s waits for the bus (%s)", message.routing_key, exc)
            except Exception as exc:
                if error is None:
                    attempts += 1
                    log.warning(
                        "amqp %s failed (%r), attempt %d of %d",
                        message.routing_key,
                        exc,
                        attempts,
                        self.max_attempts,
                    )
                    if attempts >= self.max_attempts:
                        error = exc
                        continue  # straight to the dead letter
                else:
                    log.warning("amqp %s: dead letter not stored (%r)", message.routing_key, exc)
            failures += 1
            self.retries += 1
            # Wall time, like the bus's own retries: it waits for a server, not the fabric.
            pause = self.retry_pause * 2 ** min(failures - 1, 16)
            await asyncio.sleep(min(self.max_retry_pause, pause))
        self._acks.handled(message)


async def start_amqp(
    pipeline: Pipeline,
    settings: IngestSettings,
    *,
    prefetch: int = DEFAULT_PREFETCH,
    retry_pause: float = 1.0,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> AmqpFeed:
    """Declare, bind and start consuming; the returned feed's ``stop()`` ends it."""
    feed = AmqpFeed(
        pipeline, settings, prefetch=prefetch, retry_pause=retry_pause, max_attempts=max_attempts
    )
    await feed.start()
    return feed


def _order_key(routing_key: str | None) -> str:
    """The resource uuid (last routing-key word) when there is one, else the whole key."""
    if not routing_key:
        return ""
    last = routing_key.rsplit(".", 1)[-1]
    return last if last and last != "*" else routing_key


def _client_properties() -> dict[str, Any]:
    return {"connection_name": "csfabric-ingest"}
