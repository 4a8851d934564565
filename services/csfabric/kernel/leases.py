"""Leader leases in a NATS KV bucket, so timer work runs on exactly one replica.

A lease is one key holding ``{holder, expires}``.  It is taken with an atomic ``create`` (or
a compare-and-set ``update`` of an expired holder's revision) and renewed with a
compare-and-set of our own last revision, every ``ttl / 3``.  Expiry is judged on the
kernel clock, so scaled and stepped time apply to leases too.  A holder that cannot renew
stops its work before its own ``expires`` has passed — so two replicas never work at once,
and a successor takes over within the TTL (plus one renewal interval) of a holder's death.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from .clock import Clock, RealClock

log = logging.getLogger(__name__)

BUCKET = "csfabric_leases"


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Lease:
    def __init__(
        self,
        kv: KeyValue,
        name: str,
        *,
        ttl: float = 15.0,
        holder: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.kv = kv
        self.name = name
        self.ttl = ttl
        self.holder = holder or default_holder()
        self.clock = clock or RealClock()
        self._revision: int | None = None
        self._expires: datetime | None = None

    @property
    def held(self) -> bool:
        return self._expires is not None and self.clock.now() < self._expires

    async def acquire(self) -> bool:
        """Take the lease if free or expired (or already ours); True when we hold it."""
        now = self.clock.now()
        value = self._value(now)
        try:
            entry = await self.kv.get(self.name)
        except KeyNotFoundError:
            entry = None
        try:
            if entry is None or entry.value is None:
                revision = await self.kv.create(self.name, value)
            else:
                current = json.loads(entry.value)
                theirs = current.get("holder") != self.holder
                if theirs and datetime.fromisoformat(current["expires"]) > now:
                    return False
                revision = await self.kv.update(self.name, value, last=entry.revision)
        except KeyWrongLastSequenceError:
            return False
        self._took(revision, now)
        return True

    async def renew(self) -> bool:
        if self._revision is None:
            return False
        now = self.clock.now()
        try:
            revision = await self.kv.update(self.name, self._value(now), last=self._revision)
        except KeyWrongLastSequenceError:
            self._lost("taken by another holder")
            return False
        self._took(revision, now)
        return True

    async def release(self) -> None:
        """Give the lease up at once so a successor need not wait for the TTL."""
        if self._revision is None:
            return
        with contextlib.suppress(Exception):
            expired = json.dumps({"holder": self.holder, "expires": self.clock.now().isoformat()})
            await self.kv.update(self.name, expired.encode(), last=self._revision)
        self._lost("released")

    async def run(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Forever: wait for the lease, run ``work`` while holding it, stop it when lost.

        A waiting replica polls every ``min(ttl / 3, 1 s)``, so it takes over within
        ``ttl + 1 s`` of the holder's death; a cancelled holder releases at once.
        """
        renew_every = self.ttl / 3
        poll_every = min(renew_every, 1.0)
        try:
            while True:
                if not await self._try(self.acquire):
                    await self.clock.sleep(poll_every)
                    continue
                log.info("lease %s taken by %s", self.name, self.holder)
                task = asyncio.create_task(work(), name=f"lease:{self.name}")
                try:
                    while self.held and not task.done():
                        await self.clock.sleep(renew_every)
                        await self._try(self.renew)
                    if task.done():
                        task.result()  # the work ended (or raised) by itself: surface it
                        return
                    log.warning("lease %s lost by %s; stopping its work", self.name, self.holder)
                finally:
                    if not task.done():
                        task.cancel()
                        await asyncio.gather(task, return_exceptions=True)
        finally:
            await self.release()

    async def _try(self, step: Callable[[], Awaitable[bool]]) -> bool:
        try:
            return await step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the broker is away: not holding is the safe answer
            log.info("lease %s: %s failed: %s", self.name, step.__name__, type(exc).__name__)
            return False

    def _value(self, now: datetime) -> bytes:
        expires = now + timedelta(seconds=self.ttl)
        return json.dumps({"holder": self.holder, "expires": expires.isoformat()}).encode()

    def _took(self, revision: int, now: datetime) -> None:
        self._revision = revision
        # Stop one renewal interval early, so our work ends before anyone may take over.
        self._expires = now + timedelta(seconds=self.ttl - self.ttl / 3)

    def _lost(self, why: str) -> None:
        log.info("lease %s: %s", self.name, why)
        self._revision = None
        self._expires = None


__all__ = ["BUCKET", "Lease", "default_holder"]
