"""Leases on a real NATS KV bucket: one holder at a time, takeover within TTL + 1 s.

The first test runs two real OS processes (``_lease_worker.py``) and SIGKILLs the holder;
the second steps a :class:`SteppedClock` second by second to show that a successor takes
a holder's lease exactly when its TTL runs out — not a second before — and that the old
holder had already stopped its work by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import nats.errors
import pytest
from csfabric.kernel.bus import Bus
from csfabric.kernel.clock import SteppedClock
from csfabric.kernel.leases import BUCKET, Lease
from csfabric.kernel.natsserver import NatsServerProcess
from nats.js.kv import KeyValue

from tests.integration._workload import eventually

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("_lease_worker.py")
TTL = 3.0


def ticks(path: Path) -> list[tuple[str, float]]:
    """(holder, wall time) of every complete line a worker wrote."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [(holder, float(wall)) for holder, wall, _ in (line.split() for line in lines)]


async def test_one_process_holds_the_lease_and_a_survivor_takes_over(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    bus = await Bus.connect(nats_server.url, service="leasetest", create_streams=False)
    await bus.key_value(BUCKET)  # created once here, not raced by the two workers
    await bus.close()
    names = ("alpha", "beta")
    out = {name: tmp_path / f"{name}.ticks" for name in names}
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in names}
    procs = {
        name: await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            nats_server.url,
            name,
            str(TTL),
            str(out[name]),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=logs[name],
        )
        for name in names
    }

    def story() -> str:
        counts = {name: len(ticks(out[name])) for name in names}
        codes = {name: proc.returncode for name, proc in procs.items()}
        tails = {name: (tmp_path / f"{name}.log").read_text()[-500:] for name in names}
        return f"ticks {counts}, exit codes {codes}, stderr tails {tails}"

    try:
        await eventually(
            lambda: all(path.with_suffix(".ready").exists() for path in out.values()),
            within=20,
            what=story,
        )
        both_ready = time.time()
        await eventually(lambda: any(ticks(path) for path in out.values()), within=20, what=story)
        holder = next(name for name in names if ticks(out[name]))
        other = next(name for name in names if name != holder)
        # Both compete for more than a TTL: renewals work and the other never gets in.
        await eventually(
            lambda: ticks(out[holder])[-1][1] - both_ready > TTL + 1.0, within=20, what=story
        )
        assert procs[other].returncode is None, story()
        assert ticks(out[other]) == [], story()

        killed_at = time.time()
        procs[holder].kill()
        await procs[holder].wait()
        await eventually(lambda: ticks(out[other]), within=TTL + 5.0, what=story)
        await eventually(lambda: len(ticks(out[other])) >= 5, within=5, what=story)
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for log in logs.values():
            log.close()

    old, new = ticks(out[holder]), ticks(out[other])
    takeover = new[0][1] - killed_at
    assert takeover <= TTL + 1.0, f"took {takeover:.2f}s to take over; {story()}"
    # No overlap: the survivor's first tick comes after the dead holder's last one.
    assert old[-1][1] < new[0][1]
    assert {who for who, _ in old} == {holder}
    assert {who for who, _ in new} == {other}
    print(f"\nleases: {other} took over {takeover:.2f}s after {holder} was killed")


class BreakableKV:
    """The real bucket until :attr:`broken`; then every call fails like a lost connection."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv
        self.broken = False

    async def get(self, key: str) -> KeyValue.Entry:
        self._check()
        return await self.kv.get(key)

    async def create(self, key: str, value: bytes) -> int:
        self._check()
        return await self.kv.create(key, value)

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        self._check()
        return await self.kv.update(key, value, last=last)

    def _check(self) -> None:
        if self.broken:
            raise nats.errors.ConnectionClosedError


async def test_stepped_clock_successor_takes_over_exactly_at_ttl(
    nats_server: NatsServerProcess,
) -> None:
    ttl = 15.0
    bus = await Bus.connect(nats_server.url, service="leasetest", create_streams=False)
    kv = await bus.key_value(BUCKET)
    clock = SteppedClock()
    start = clock.now()
    journal: list[tuple[str, str, datetime]] = []

    def work(name: str) -> Callable[[], Coroutine[Any, Any, None]]:
        async def run() -> None:
            journal.append((name, "start", clock.now()))
            try:
                await asyncio.Event().wait()  # works until cancelled; never sleeps on the clock
            finally:
                journal.append((name, "stop", clock.now()))

        return run

    def when(name: str, what: str) -> list[datetime]:
        return [at for who, kind, at in journal if (who, kind) == (name, what)]

    async def step() -> None:
        """One second on; then wait until both replicas are back asleep on the clock."""
        await clock.advance(1)
        await eventually(
            lambda: clock.sleepers == 2,
            within=10,
            what=lambda: f"both asleep; {journal}",
            interval=0.002,
        )

    a_kv = BreakableKV(kv)
    a = Lease(cast(KeyValue, a_kv), "stepped", ttl=ttl, holder="a", clock=clock)
    b = Lease(kv, "stepped", ttl=ttl, holder="b", clock=clock)
    a_task = asyncio.create_task(a.run(work("a")))
    tasks = [a_task]
    try:
        await eventually(lambda: when("a", "start") and clock.sleepers == 1, within=10, what="a")
        tasks.append(asyncio.create_task(b.run(work("b"))))
        await eventually(lambda: clock.sleepers == 2, within=10, what="b waiting")
        a_kv.broken = True  # a can no longer renew: its last write said "mine until +ttl"

        while not when("b", "start"):
            assert clock.now() - start <= timedelta(seconds=ttl + 3), journal
            await step()
        assert when("b", "start") == [start + timedelta(seconds=ttl)], journal
        # a gave up its work one renewal interval before its lease could expire.
        assert when("a", "stop") == [start + timedelta(seconds=ttl * 2 / 3)], journal

        a_kv.broken = False  # a comes back: it must not take the lease from a live b
        for _ in range(int(ttl) * 2):
            await step()
        assert len(when("a", "start")) == 1, journal
        assert when("b", "stop") == [], journal
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        await bus.close()
