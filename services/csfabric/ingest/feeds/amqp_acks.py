"""The AMQP feed's acks: sent once per loop turn, in delivery order, batched where they can.

A run of handled messages at the head of the delivery order is acked with one ``multiple``
ack (every earlier delivery on the channel is handled too); a handled message behind one
still in hand is acked on its own, so a message that waits for a retry holds back no other.
Acks go out strictly in the order they were taken: a ``multiple`` ack sent before an
earlier single ack of a tag it covers would make RabbitMQ close the channel.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

__all__ = ["InOrderAcks", "settle"]

log = logging.getLogger("csfabric.ingest.feeds.amqp")


class InOrderAcks:
    """Acks handled messages once per loop turn: a handled run at the head of the delivery
    order with one ``multiple`` ack, one behind a message still in hand on its own."""

    PENDING, HANDLED, ACKED = 0, 1, 2

    def __init__(self, feed: Any) -> None:
        self.feed = feed
        self._order: collections.deque[list[Any]] = collections.deque()  # [message, state]
        self._entry: dict[int, list[Any]] = {}
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()
        # Acks go out strictly in the order they were taken: a ``multiple`` ack sent before
        # an earlier single ack of a tag it covers would make RabbitMQ close the channel.
        self._last: asyncio.Task[None] | None = None

    def arrived(self, message: AbstractIncomingMessage) -> None:
        entry = [message, self.PENDING]
        self._order.append(entry)
        self._entry[id(message)] = entry

    def handled(self, message: AbstractIncomingMessage) -> None:
        entry = self._entry.get(id(message))
        if entry is None:  # not registered (cannot happen): acked alone at the next flush
            entry = [message, self.PENDING]
            self._order.append(entry)
            self._entry[id(message)] = entry
        entry[1] = self.HANDLED
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _take(self) -> tuple[AbstractIncomingMessage | None, int, list[AbstractIncomingMessage]]:
        """(the message to ack ``multiple``, how many it settles, those to ack alone)."""
        order, last, count = self._order, None, 0
        while order and order[0][1] != self.PENDING:
            message, state = order.popleft()
            del self._entry[id(message)]
            if state == self.HANDLED:
                last, count = message, count + 1
        alone = []
        for entry in order:  # handled behind a message still in hand: not held back
            if entry[1] == self.HANDLED:
                entry[1] = self.ACKED
                alone.append(entry[0])
        return last, count, alone

    def _flush(self) -> None:
        self._scheduled = False
        last, count, alone = self._take()
        if last is None and not alone:
            return
        task = asyncio.create_task(self._send(last, count, alone, self._last))
        self._last = task
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(
        self,
        last: AbstractIncomingMessage | None,
        count: int,
        alone: list[AbstractIncomingMessage],
        previous: asyncio.Task[None] | None,
    ) -> None:
        await asyncio.gather(*([previous] if previous else []), return_exceptions=True)
        if last is not None:
            # Every delivery before ``last`` on its channel is handled (and acked) too.
            await settle(last.ack(multiple=True))
            self.feed.acked += count
        for message in alone:
            await settle(message.ack())
            self.feed.acked += 1

    async def flush_now(self) -> None:
        self._flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


async def settle(call: Any) -> None:
    try:
        await call
    except Exception as exc:
        # The channel this delivery came on is gone (broker restart, stop): RabbitMQ
        # requeues the message itself, and the duplicate window absorbs the replay.
        log.info("amqp ack/nack not sent (%r); the broker will redeliver", exc)
