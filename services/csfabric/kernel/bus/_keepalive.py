"""Keeps JetStream messages in hand alive while they wait, are handled or are retried.

A message not acknowledged within the consumer's ``ack_wait`` is delivered again, possibly
to another replica while the first still works on it.  So every message a consumer holds
(fetched, queued behind an earlier event of its resource, in its handler, or waiting for
an in-process retry) gets an ``in_progress`` ("+WPI") at least every third of
``ack_wait``.  One periodic task serves all of them: holding a message costs a dict
entry, not a timer per message, so the hot path stays as fast as without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from nats.aio.msg import Msg

from csfabric.kernel._logs import get_logger

__all__ = ["KeepAlive"]

log = get_logger(__name__)


class KeepAlive:
    """Sends ``in_progress`` for every held message at least every ``interval`` wall seconds.

    ``interval`` is a third of the server's (real-time) ack wait: the check runs twice per
    interval, so a message is touched at most 1.5 intervals — half of ``ack_wait`` — after
    its delivery or its last touch.  After ``max_hold`` wall seconds a message is no longer
    touched: a handler stuck that long must not keep its message (and the events of its
    resource behind it) from every other worker for ever.
    """

    def __init__(self, interval: float, max_hold: float = float("inf")) -> None:
        self.interval = max(0.01, interval)
        self.max_hold = max_hold
        self._held: dict[int, tuple[Msg, float, float]] = {}
        self.sent = 0

    def hold(self, messages: Iterable[Msg], delivered_at: float) -> None:
        """Start keeping ``messages`` alive; ``delivered_at`` (``time.monotonic()``) is a
        time no later than their delivery, e.g. when the fetch that got them began."""
        for msg in messages:
            self._held[id(msg)] = (msg, delivered_at, delivered_at)

    def drop(self, msg: Msg) -> None:
        """``msg`` is settled (acked, naked) or abandoned: stop touching it."""
        self._held.pop(id(msg), None)

    def __len__(self) -> int:
        return len(self._held)

    async def run(self) -> None:
        """Touch due messages until cancelled (in wall time: the server's timer is real)."""
        while True:
            await asyncio.sleep(self.interval / 2)
            await self.touch_due(time.monotonic())

    async def touch_due(self, now: float) -> None:
        due = [
            (msg, since)
            for msg, since, touched in self._held.values()
            if now - touched >= self.interval and now - since < self.max_hold
        ]
        for msg, since in due:
            key = id(msg)
            if key not in self._held:  # settled while an earlier touch was awaited
                continue
            self._held[key] = (msg, since, now)
            # A lost touch only risks an early redelivery, which the idempotency keys make
            # harmless; it must never stop the keep-alive of the other messages.
            with contextlib.suppress(Exception):
                await msg.in_progress()
                self.sent += 1
