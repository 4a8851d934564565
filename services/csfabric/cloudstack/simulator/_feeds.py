"""The simulator's event feeds: CloudStack's AMQP, Kafka and webhook publishers.

Checked against apache/cloudstack's event-bus plugins: ``RabbitMQEventBus`` (one durable topic
exchange, no queues, ``MessageProperties.PERSISTENT_TEXT_PLAIN``: text/plain, delivery mode 2,
priority 0, no headers/message id); ``KafkaEventBus.publish`` (``new ProducerRecord(topic,
event.getResourceUUID(), event.getDescription())``); ``WebhookDeliveryThread`` (X-CS-Event-ID,
X-CS-Event, User-Agent CS-Hookshot/<account>, X-CS-Signature = base64 HMAC-SHA256; 3 tries, 10 s
timeouts, only 200 counts).  CloudStack ignores bus failures; a slow or broken feed must never stall
the simulator's API either, so :class:`Fanout` gives each sink a bounded queue and a worker.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import uuid
from bisect import insort
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import aio_pika
import aiohttp
from aiokafka import AIOKafkaProducer

from csfabric.cloudstack._native import NativeEvent
from csfabric.cloudstack.simulator._emit import EventSink
from csfabric.kernel import get_logger

__all__ = ["EventLog", "EventSink", "Fanout", "KafkaSink", "RabbitSink", "WebhookDelivery"]
__all__ += ["TEST_PAYLOAD", "WebhookSink", "send_test_delivery", "webhook_signature"]

log = get_logger(__name__)

# WebhookServiceImpl.getManualDeliveryJob's default payload, spaces included.
TEST_PAYLOAD = b'{ "CloudStack": "works!" }'
TEST_EVENT_TYPE = "TEST.WEBHOOK"


class EventLog:
    """Every event the simulator produced, ordered by time: the store behind listEvents."""

    def __init__(self) -> None:
        self._events: list[tuple[datetime, NativeEvent]] = []

    async def emit(self, event: NativeEvent) -> None:
        if event.when is None:
            raise ValueError("EventLog needs NativeEvent.when (set by the builders)")
        insort(self._events, (event.when, event), key=lambda t: t[0])  # ties: emission order

    def list(self, start: datetime | None = None, end: datetime | None = None) -> list[NativeEvent]:
        """Events with ``start <= when <= end`` (CloudStack's startdate/enddate are inclusive)."""
        return [e for t, e in self._events if (not start or t >= start) and (not end or t <= end)]

    def get(self, event_id: str) -> NativeEvent | None:
        return next((e for _, e in self._events if e.event_id == event_id), None)

    async def close(self) -> None:
        """Nothing to release: the log lives as long as the simulator."""


class _Lane:
    """One sink's queue and worker; retries with capped exponential backoff."""

    def __init__(self, sink: EventSink, size: int, base: float, cap: float, attempts: int):
        self.sink, self.base, self.cap, self.attempts = sink, base, cap, attempts
        self.queue: asyncio.Queue[NativeEvent] = asyncio.Queue(maxsize=size)
        self.dropped = self.failed = self.delivered = 0
        self.task: asyncio.Task[None] | None = None
        self.name = type(sink).__name__

    def offer(self, event: NativeEvent) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name=f"feed:{self.name}")
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("feed %s queue full; dropped %d events so far", self.name, self.dropped)

    async def _run(self) -> None:
        while True:
            event = await self.queue.get()
            for attempt in range(1, self.attempts + 1):
                try:
                    await self.sink.emit(event)
                    self.delivered += 1
                    break
                except Exception as exc:  # any sink failure must stay inside this lane
                    log.warning("feed %s failed (attempt %d): %r", self.name, attempt, exc)
                    if attempt == self.attempts:
                        self.failed += 1  # given up: keep the lane moving
                    else:
                        await asyncio.sleep(min(self.cap, self.base * 2 ** (attempt - 1)))
            self.queue.task_done()


class Fanout:
    """An :class:`EventSink` that hands each event to many sinks without ever waiting on them."""

    def __init__(
        self,
        sinks: list[EventSink],
        *,
        queue_size: int = 10_000,
        backoff_base: float = 0.2,
        backoff_cap: float = 10.0,
        max_attempts: int = 10,
    ) -> None:
        self._lanes = [_Lane(s, queue_size, backoff_base, backoff_cap, max_attempts) for s in sinks]

    async def emit(self, event: NativeEvent) -> None:
        for lane in self._lanes:
            lane.offer(event)

    def stats(self) -> dict[str, dict[str, int]]:
        keys, lanes = ("delivered", "failed", "dropped"), enumerate(self._lanes)
        return {f"{i}:{ln.name}": {k: getattr(ln, k) for k in keys} for i, ln in lanes}

    async def flush(self, within: float | None = None) -> bool:
        """Wait until every queued event was delivered or given up; False on timeout."""
        joins = asyncio.gather(*(lane.queue.join() for lane in self._lanes))
        try:
            await asyncio.wait_for(joins, within)
        except TimeoutError:
            return False
        return True

    async def close(self, within: float = 5.0) -> None:
        await self.flush(within)
        for lane in self._lanes:
            if lane.task is not None:
                lane.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.task
            with contextlib.suppress(Exception):
                await lane.sink.close()


class RabbitSink:
    """Publishes like CloudStack's RabbitMQ plugin; connects lazily, reconnects on failure.

    Deviation: aiormq stamps a random ``message_id`` (CloudStack sends none); ignore it.
    """

    def __init__(self, url: str, exchange: str = "cloudstack-events") -> None:
        self.url, self.exchange_name = url, exchange
        self._conn: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> aio_pika.abc.AbstractExchange:
        async with self._lock:
            if self._exchange is None or self._conn is None or self._conn.is_closed:
                self._conn = await aio_pika.connect_robust(self.url)
                channel = await self._conn.channel()
                self._exchange = await channel.declare_exchange(
                    self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                )
            return self._exchange

    async def emit(self, event: NativeEvent) -> None:
        exchange = await self._ensure()
        persistent = aio_pika.DeliveryMode.PERSISTENT
        message = aio_pika.Message(
            event.body_json(), content_type="text/plain", delivery_mode=persistent, priority=0
        )
        await exchange.publish(message, routing_key=event.routing_key())

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        self._conn = self._exchange = None


class KafkaSink:
    """Publishes like CloudStack's Kafka plugin: bare body, key = resource uuid."""

    def __init__(self, bootstrap: str, topic: str = "cloudstack") -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
                await producer.start()
                self._producer = producer
            return self._producer

    async def emit(self, event: NativeEvent) -> None:
        producer = await self._ensure()
        await producer.send_and_wait(self.topic, value=event.body_json(), key=event.kafka_key)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
        self._producer = None


def webhook_signature(secret: str, payload: bytes) -> str:
    """``X-CS-Signature``: base64 of HMAC-SHA256 over the exact body, no ``sha256=`` prefix."""
    digest = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class WebhookDelivery:
    """One delivery (all attempts), as CloudStack's webhook delivery history records it."""

    event_id: str
    event_type: str
    success: bool
    attempts: int
    status: int | None
    response: str


class WebhookSink:
    """Delivers ActionEvents like WebhookDeliveryThread; failures are recorded, not raised.

    Not raising matters: CloudStack never re-delivers after its three tries, so a Fanout
    retry on top would send more attempts than the real server does.
    """

    def __init__(
        self,
        url: str,
        secret: str | None = None,
        *,
        attempts: int = 3,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url, self.secret, self.attempts, self.timeout = url, secret, attempts, timeout
        self._session, self._own_session = session, session is None
        self.deliveries: deque[WebhookDelivery] = deque(maxlen=1000)  # bounded: long runs

    async def emit(self, event: NativeEvent) -> None:
        if event.category == "ActionEvent":
            self.deliveries.append(await self.deliver(event))

    async def deliver(self, event: NativeEvent) -> WebhookDelivery:
        ev = event
        return await self._post(ev.body_json(), ev.event_id, ev.event_type, ev.account_uuid)

    async def _post(
        self, payload: bytes, event_id: str, event_type: str, account: str | None
    ) -> WebhookDelivery:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        # Content-Type: Apache HttpClient's ContentType.APPLICATION_JSON (payload is JSON).
        headers = {"X-CS-Event-ID": event_id, "X-CS-Event": event_type}
        headers |= {"User-Agent": f"CS-Hookshot/{account}"}
        headers |= {"Content-Type": "application/json; charset=UTF-8"}
        if self.secret:
            headers["X-CS-Signature"] = webhook_signature(self.secret, payload)
        status: int | None = None
        response, timeout = "", aiohttp.ClientTimeout(total=self.timeout)
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._session.post(
                    self.url, data=payload, headers=headers, timeout=timeout
                ) as resp:
                    status, response = resp.status, await resp.text()
                if status == 200:
                    return WebhookDelivery(event_id, event_type, True, attempt, status, response)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, response = None, f"Failed due to : {exc!r}"
        cause = f"HTTP {status}" if status else response  # once per event, not per attempt
        log.warning("webhook %s %s failed %d times: %s", event_type, event_id, self.attempts, cause)
        return WebhookDelivery(event_id, event_type, False, self.attempts, status, response)

    async def test_delivery(self, account_uuid: str) -> WebhookDelivery:
        """CloudStack's ``executeWebhookDelivery`` without a payload: a TEST.WEBHOOK ping."""
        return await self._post(TEST_PAYLOAD, str(uuid.uuid4()), TEST_EVENT_TYPE, account_uuid)

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None


async def send_test_delivery(url: str, secret: str | None, *, account_uuid: str) -> WebhookDelivery:
    sink = WebhookSink(url, secret)
    try:
        return await sink.test_delivery(account_uuid)
    finally:
        await sink.close()
