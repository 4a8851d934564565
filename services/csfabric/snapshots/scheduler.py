"""The scheduler: every in-scope volume, once per window, at its stable offset in it.

Runs on the lease holder only (:meth:`Lease.run`).  It keeps a heap of what is due: when
a policy's window begins (or the scheduler starts mid-window, or a volume appears), each
selected volume gets its due time — the window's start plus its stable offset over the
policy's ``jitter`` — and at that time one attempt task runs (at most ``max_in_flight`` at
once; the client's rate limit and concurrency cap apply beneath).  What an attempt does is
:mod:`csfabric.snapshots.attempt`.

After a restart or takeover nothing is remembered but what CloudStack and the ledger say:
:meth:`Scheduler.rebuild` reads the ``csfabric:key`` tags of the policy's snapshots, and
the action ledger knows every key attempted, so a window is neither done twice nor skipped
(a volume whose due time passed while no one held the lease is attempted at once).
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field

from csfabric.dr import KIND, SnapshotPolicy, Window, window_at
from csfabric.kernel import get_logger
from csfabric.snapshots.attempt import Attempts
from csfabric.snapshots.logic import Due, plan_window

log = get_logger(__name__)


@dataclass
class _Planned:
    window: Window
    fingerprint: tuple[int, int]  # (policy version, inventory version)
    volumes: set[str] = field(default_factory=set)


class Scheduler:
    def __init__(self, attempts: Attempts) -> None:
        self.attempts = attempts
        self.ctx = attempts.ctx
        self.settings = attempts.settings
        self.inventory = attempts.inventory
        self._heap: list[Due] = []
        self._planned: dict[str, _Planned] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.settings.max_in_flight)
        self.wake = asyncio.Event()
        self.ctx.policies.on_change(lambda *_: self.wake.set())

    def policies(self) -> list[tuple[str, int, SnapshotPolicy]]:
        out = []
        for stored in self.ctx.policies.all(KIND):
            spec = stored.spec()
            if isinstance(spec, SnapshotPolicy):
                out.append((stored.name, stored.version, spec))
        return out

    async def rebuild(self) -> None:
        """Learn the windows already done from CloudStack (the policy's tagged snapshots)."""
        for name, _, policy in self.policies():
            try:
                await self.attempts.learn_done(name, policy)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the ledger still stops a second call
                log.warning("rebuild of %s failed: %s: %s", name, type(error).__name__, error)

    async def run(self) -> None:
        """Forever, under the lease (cancelled when it is lost)."""
        await self.rebuild()
        try:
            while True:
                now = self.ctx.clock.now()
                next_start = self._plan()
                while self._heap and self._heap[0].at <= now:
                    due = heapq.heappop(self._heap)
                    await self._slots.acquire()
                    task = asyncio.create_task(self._run(due), name=f"snapshot:{due.volume_id}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                await self._sleep(next_start)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, due: Due) -> None:
        try:
            await self.attempts.run(due)
        finally:
            self._slots.release()

    def _plan(self) -> float | None:
        """Put every newly due volume on the heap; the seconds until the next window starts."""
        now = self.ctx.clock.now()
        nearest: float | None = None
        live = set()
        for name, version, policy in self.policies():
            live.add(name)
            planned = self._planned.get(name)
            if planned is None or now >= planned.window.end:
                window = window_at(now, policy.every, policy.timezone)
                planned = self._planned[name] = _Planned(window, (-1, -1))
            fingerprint = (version, self.inventory.version)
            if planned.fingerprint != fingerprint:
                planned.fingerprint = fingerprint
                fresh = [v for v in self.inventory.volumes.values() if v.id not in planned.volumes]
                for due in plan_window(policy, name, fresh, planned.window):
                    planned.volumes.add(due.volume_id)
                    heapq.heappush(self._heap, due)
            until = (planned.window.end - now).total_seconds()
            nearest = until if nearest is None else min(nearest, until)
        for gone in set(self._planned) - live:
            del self._planned[gone]
        return nearest

    async def _sleep(self, next_start: float | None) -> None:
        now = self.ctx.clock.now()
        delay = self.settings.tick
        if next_start is not None:
            delay = min(delay, next_start)
        if self._heap:
            delay = min(delay, (self._heap[0].at - now).total_seconds())
        self.wake.clear()
        self.inventory.changed.clear()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        waits = [asyncio.ensure_future(e.wait()) for e in (self.wake, self.inventory.changed)]
        sleeper = asyncio.ensure_future(self.ctx.clock.sleep(delay))
        try:
            await asyncio.wait([sleeper, *waits], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (sleeper, *waits):
                f.cancel()


__all__ = ["Scheduler"]
