"""The in-memory NATS server: streams, durable consumers, watchers, one clock.

Its timers (``ack_wait``, nak delays, ``max_age``, the dedupe window) run on the server's
own :class:`~csfabric.kernel.Clock` — wall time by default, as nats-server's do; give it
the test's :class:`~csfabric.kernel.SteppedClock` to step them as well.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import ConsumerConfig, ConsumerInfo, PubAck, StreamConfig, StreamInfo
from nats.js.errors import (
    BadRequestError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from csfabric.kernel import Clock, RealClock
from csfabric.kernel.bus import subject_intersection
from csfabric.kernel.testing._consumer import Delivered, PullConsumer
from csfabric.kernel.testing._stream import Stored, Stream

if TYPE_CHECKING:
    from csfabric.kernel.testing._client import MemoryClient

Listener = Callable[[Stream, Stored], None]


def _stream_not_found() -> NotFoundError:
    return NotFoundError(code=404, err_code=10059, description="stream not found")


def _consumer_not_found() -> NotFoundError:
    return NotFoundError(code=404, err_code=10014, description="consumer not found")


class MemoryNats:
    """One in-memory NATS + JetStream "server"; :meth:`client` connects a client to it."""

    max_payload = 1024 * 1024  # nats-server's default max_payload

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or RealClock()
        self.streams: dict[str, Stream] = {}
        self.consumers: dict[tuple[str, str], PullConsumer] = {}
        self.listeners: list[Listener] = []
        self._changed = asyncio.Event()

    def client(self, name: str = "memory") -> MemoryClient:
        from csfabric.kernel.testing._client import MemoryClient

        return MemoryClient(self, name)

    # -- time and waiting ----------------------------------------------------------------

    def now(self) -> float:
        return self.clock.monotonic()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, timeout: float, due: float | None) -> None:  # noqa: ASYNC109
        """Until something changed, ``due`` (server time) came, or ``timeout`` wall seconds."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._changed.wait())]
        if due is not None:
            waits.append(asyncio.ensure_future(self.clock.sleep(max(0.0, due - self.now()))))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            for waiting in waits:
                with contextlib.suppress(BaseException):
                    await waiting

    # -- streams -------------------------------------------------------------------------

    def stream(self, name: str) -> Stream:
        stream = self.streams.get(name)
        if stream is None:
            raise _stream_not_found()
        stream.expire(self.now())
        return stream

    def add_stream(self, config: StreamConfig) -> StreamInfo:
        name = config.name or ""
        if not name or any(c in name for c in ".*> "):
            raise BadRequestError(code=400, err_code=10058, description="invalid stream name")
        existing = self.streams.get(name)
        if existing is not None:
            if Stream(config, existing.created).config != existing.config:
                raise BadRequestError(
                    code=400, err_code=10058, description="stream name already in use"
                )
            return self.stream_info(name)
        self._check_overlap(name, config)
        self.streams[name] = Stream(config, self.clock.now())
        return self.stream_info(name)

    def update_stream(self, config: StreamConfig) -> StreamInfo:
        stream = self.stream(config.name or "")
        self._check_overlap(stream.name, config)
        stream.config = Stream(config, stream.created).config
        stream.expire(self.now())
        self.notify()
        return self.stream_info(stream.name)

    def _check_overlap(self, name: str, config: StreamConfig) -> None:
        for other in self.streams.values():
            if other.name == name:
                continue
            for subject in config.subjects or []:
                if any(
                    subject_intersection(subject, theirs) is not None
                    for theirs in other.config.subjects or []
                ):
                    raise BadRequestError(
                        code=400,
                        err_code=10065,
                        description="subjects overlap with an existing stream",
                    )

    def delete_stream(self, name: str) -> bool:
        self.stream(name)
        del self.streams[name]
        for key in [k for k in self.consumers if k[0] == name]:
            del self.consumers[key]
        self.notify()
        return True

    def stream_info(self, name: str) -> StreamInfo:
        stream = self.stream(name)
        count = sum(1 for key in self.consumers if key[0] == name)
        return stream.info(count)

    def publish(self, subject: str, data: bytes, headers: dict[str, str] | None) -> PubAck:
        for stream in self.streams.values():
            if stream.captures(subject):
                ack, stored = stream.store(
                    subject, data, headers, wall=self.clock.now(), mono=self.now()
                )
                if stored is not None:
                    for listener in list(self.listeners):
                        listener(stream, stored)
                    self.notify()
                return ack
        # What nats-py raises when no stream listens on the subject (no responders).
        raise NoStreamResponseError

    # -- consumers -----------------------------------------------------------------------

    def add_consumer(self, stream_name: str, config: ConsumerConfig) -> ConsumerInfo:
        stream = self.stream(stream_name)
        name = config.durable_name or config.name
        if not name:
            raise BadRequestError(code=400, err_code=10161, description="consumer name required")
        existing = self.consumers.get((stream_name, name))
        if existing is None:
            self.consumers[(stream_name, name)] = PullConsumer(stream, config, self.clock.now())
        else:
            existing.update(config)
        self.notify()
        return self.consumer_info(stream_name, name)

    def consumer(self, stream: str, name: str) -> PullConsumer:
        self.stream(stream)
        consumer = self.consumers.get((stream, name))
        if consumer is None:
            raise _consumer_not_found()
        return consumer

    def consumer_info(self, stream: str, name: str) -> ConsumerInfo:
        return self.consumer(stream, name).info()

    def delete_consumer(self, stream: str, name: str) -> bool:
        self.consumer(stream, name)
        del self.consumers[(stream, name)]
        return True

    async def fetch(self, stream: str, name: str, batch: int, timeout: float) -> list[Delivered]:  # noqa: ASYNC109
        """What a pull request gets: what is there at once, else the first to come in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            consumer = self.consumers.get((stream, name))
            if consumer is None:
                # Nobody answers a pull request for a missing consumer: nats-py sees the
                # 503 "no responders" status (not NotFoundError).
                raise ServiceUnavailableError
            taken = consumer.take(batch, self.now())
            if taken:
                return taken
            left = deadline - loop.time()
            if left <= 0:
                raise NatsTimeoutError
            await self.wait(left, consumer.next_due())

    def settle(self, reply: str, payload: bytes) -> None:
        """A message's ack reply: ``$JS.ACK.<stream>.<consumer>.<dc>.<sseq>.<cseq>.<ts>.<n>``."""
        tokens = reply.split(".")
        consumer = self.consumers.get((tokens[2], tokens[3]))
        if consumer is not None:
            consumer.settle(int(tokens[5]), payload, self.now())
            self.notify()


__all__ = ["MemoryNats"]
