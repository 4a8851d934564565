"""Leader leases in a NATS KV bucket, with fencing tokens, so timer work has one actor.

A lease is one key.  It is taken with an atomic ``create`` (or a compare-and-set ``update``
of the revision a taker has watched go stale), renewed every ``ttl / 3`` with a
compare-and-set of our own last revision, and released by writing a ``released`` marker.

**Terms and fencing tokens.**  Each take starts a *term*; its token (:attr:`Lease.token`) is
the KV revision of the write that took the lease.  Revisions only grow, so a later term
always has a larger token than any earlier one.  Every side effect done under a lease calls
:meth:`Lease.fence` (or acts inside ``async with lease.fenced():``) immediately before it
acts; the fence raises :class:`~csfabric.kernel.errors.LeaseLost` unless (1) our own
deadline has not passed and (2) one KV read shows the entry still belongs to our term.

**No clock is trusted across replicas.**  Deadlines are kept on each replica's own
monotonic clock (:meth:`Clock.monotonic`, which follows scaled and stepped time):

* the holder may act until ``sent + ttl - ttl/3``, where ``sent`` is when the take or the
  last successful renewal *request was sent* (the write landed after that);
* a taker may take over only after it has seen the *same revision* unchanged for a full
  ``ttl`` (the larger of its own and the one the holder wrote), counted from when its read
  *answered* (the write landed before that) — the lock-delay of Consul and etcd.

So a successor starts at least ``ttl/3`` after the old holder stopped by its own clock,
whatever the replicas' wall clocks say: skew between them does not matter, only a
difference in clock *rate* beyond a third would.  The ``expires`` time in the value is the
holder's wall-clock guess, for ``csfabric status`` only; nobody decides on it.  A holder
that stalls (GC, a blocked loop, SIGSTOP) past its deadline resumes with its fence
refusing at once, before any KV read.

**The window that remains.**  The fence proves the term was ours when it returned, not when
the act lands: a process that stalls for more than ``ttl/3`` *between* the fence and the
act (or whose act takes that long to reach its target) may act after a successor began.
Keep the act right after the fence, with no await in between when possible.  A downstream
that must never see an older term after a newer one closes the window itself by storing
the token with the action and refusing lower ones: write it into the action ledger's
intent or the audit record (``lease_token``), or make the write a compare-and-set guarded
by the highest token seen.

**Takeover.**  After an explicit :meth:`Lease.release` a successor takes over at its next
poll (``min(ttl/3, 1 s)``).  After a holder's death it takes over within ``ttl`` plus one
poll of the holder's last renewal.  A replica that finds its own holder name on the entry
(it restarted its work, or was cut off and nobody took over) takes it back at once, so
holder names must be unique per process (the default ``host:pid`` is).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from csfabric.kernel._clock import Clock, RealClock
from csfabric.kernel._lease_term import Term
from csfabric.kernel.errors import LeaseLost

log = logging.getLogger(__name__)

BUCKET = "csfabric_leases"


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Lease:
    """One named lease; ``ttl`` is in fabric seconds (the default is what services ship)."""

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
        self._term = Term(ttl, self.clock)

    @property
    def renew_every(self) -> float:
        return self._term.renew_every

    @property
    def held(self) -> bool:
        """Whether our term lasts by our own monotonic clock (no KV read)."""
        return self._term.held

    @property
    def token(self) -> int | None:
        """The fencing token of our term while :attr:`held`, else None."""
        return self._term.token if self.held else None

    async def acquire(self) -> bool:
        """Take the lease if free, released, stale, or ours; True when we hold it."""
        try:
            entry = await self.kv.get(self.name)
        except KeyNotFoundError:  # never written, or deleted / purged
            entry = None
        observed = self.clock.monotonic()  # the entry was written before this answer
        try:
            if entry is None or entry.value is None:
                sent = self.clock.monotonic()
                revision = await self.kv.create(self.name, self._value())
            else:
                current = _decode(entry.value)
                mine = current.get("holder") == self.holder
                if mine and self.held and entry.revision == self._term.revision:
                    return await self.renew()
                free = mine or current.get("released") is True
                if not free and not self._term.stale(entry.revision or 0, observed, current):
                    return False
                sent = self.clock.monotonic()
                revision = await self.kv.update(self.name, self._value(), last=entry.revision)
        except KeyWrongLastSequenceError:  # someone else wrote first
            return False
        self._term.took(revision, sent, new_term=True)
        return True

    async def renew(self) -> bool:
        """Extend our term with a compare-and-set of our last revision."""
        if self._term.revision is None:
            return False
        sent = self.clock.monotonic()
        if not self.held:
            self._lost("its deadline passed before it could renew")
            return False
        try:
            revision = await self.kv.update(
                self.name, self._value(term=self._term.token), last=self._term.revision
            )
        except KeyWrongLastSequenceError:
            self._lost("taken by another holder")
            return False
        self._term.took(revision, sent, new_term=False)
        return True

    async def release(self) -> None:
        """Give the lease up at once so a successor need not wait for the TTL."""
        revision = self._term.revision
        if revision is None:
            return
        self._lost("released")  # first: no fence passes from here on
        released = {"holder": self.holder, "expires": self.clock.now().isoformat()}
        value = json.dumps({**released, "released": True}).encode()
        with contextlib.suppress(Exception):  # not released: the successor waits out the TTL
            await self.kv.update(self.name, value, last=revision)

    async def fence(self) -> int:
        """Call immediately before a side effect: our token, or :class:`LeaseLost`.

        Refuses at once when our deadline has passed; otherwise one KV read must show the
        entry is still our term's (our last revision, or a renewal of our term racing this
        read).  The deadline is checked again after the read, which may itself have stalled.
        """
        self._current("before its fence")
        try:
            entry = await self.kv.get(self.name)
        except asyncio.CancelledError:
            raise
        except KeyNotFoundError:
            self._lost("its entry is gone")
            raise LeaseLost(f"lease {self.name}: entry gone") from None
        except Exception as exc:  # cannot prove we hold it: do not act
            raise LeaseLost(f"lease {self.name}: cannot verify ({type(exc).__name__})") from exc
        if entry.revision != self._term.revision:
            current = _decode(entry.value or b"")
            ours = current.get("holder") == self.holder and current.get("term") == self._term.token
            if not ours:
                self._lost(f"revision {entry.revision} is not our term's")
                raise LeaseLost(f"lease {self.name}: held by {current.get('holder')!r} now")
        return self._current("during its fence")

    def check(self) -> int:
        """The local half of :meth:`fence` (our deadline only, no KV read): our token or
        :class:`LeaseLost`.  For tight loops of small acts between full fences."""
        return self._current("at its check")

    @contextlib.asynccontextmanager
    async def fenced(self) -> AsyncIterator[int]:
        """``async with lease.fenced() as token:`` — fence, act; LeaseLost if the term ran out.

        The raise on exit does not undo the act; it stops the work there, because the next
        act would be refused anyway.
        """
        yield await self.fence()
        try:
            self._current("while it acted")
        except LeaseLost as lost:  # after the act: it may have happened
            raise LeaseLost(str(lost), acted=True) from None

    async def run(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Forever: wait for the lease, run ``work`` while holding it, stop it when lost.

        ``work`` fences its own side effects; when it raises :class:`LeaseLost` it is treated
        as the end of the term and the lease is competed for again.  A cancelled holder
        releases at once.
        """
        poll_every = min(self.renew_every, 1.0)
        try:
            while True:
                if not await self._try(self.acquire):
                    await self.clock.sleep(self._term.until_take(poll_every))
                    continue
                term = self._term.token
                log.info("lease %s taken by %s (token %s)", self.name, self.holder, term)
                task = asyncio.create_task(work(), name=f"lease:{self.name}")
                try:
                    while not task.done() and self.held:
                        await self.clock.sleep(self._term.until_renewal(poll_every))
                        if task.done() or not self.held:
                            break
                        self._term.renewed = await self._try(self.renew)
                    if task.done():
                        error = None if task.cancelled() else task.exception()
                        if not isinstance(error, LeaseLost):
                            task.result()  # the work ended (or raised) by itself: surface it
                            return
                        self._lost(f"its work stopped: {error}")
                        continue
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

    def _current(self, when: str) -> int:
        if self._term.token is None or not self.held:
            if self._term.token is not None:
                self._lost(f"its deadline passed {when}")
            raise LeaseLost(f"lease {self.name}: not held by {self.holder} ({when})")
        return self._term.token

    def _value(self, *, term: int | None = None) -> bytes:
        value: dict[str, Any] = {
            "holder": self.holder,
            # The holder's wall-clock guess, shown by `csfabric status`; never decided on.
            "expires": (self.clock.now() + timedelta(seconds=self.ttl)).isoformat(),
            "ttl": self.ttl,
        }
        if term is not None:
            value["term"] = term
        return json.dumps(value).encode()

    def _lost(self, why: str) -> None:
        if self._term.end():
            log.info("lease %s: %s: %s", self.name, self.holder, why)


def _decode(raw: bytes) -> dict[str, Any]:
    """The entry's JSON object; anything else (garbage, old formats) reads as empty."""
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


__all__ = ["BUCKET", "Lease", "LeaseLost", "default_holder"]
