"""Leases on a real NATS KV bucket, with real OS processes: one actor at a time.

Each process (``_lease_worker.py``) uses the shipped default TTL on a scaled kernel clock and
logs every act, with its fencing token, to one shared file.  Three ways to lose a holder:

* SIGKILL: a survivor takes over within the TTL plus one renewal interval;
* SIGSTOP past the TTL, then SIGCONT: the successor acts, the stalled one never again;
* wall clocks skewed by more than the TTL: never two actors, and still a takeover.

After each, :func:`check_fencing` proves what a downstream would see: every act carries the
token of a term its holder really took (the KV history says so), and once a newer term has
acted no older term acts again.  The last test steps a :class:`SteppedClock` second by
second to show that a successor takes over exactly when the TTL runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple, cast

import nats.errors
import pytest
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import LEASE_BUCKET as BUCKET
from csfabric.kernel import Lease, SteppedClock, scaled_spec
from csfabric.kernel.bus import Bus
from nats.js.kv import KeyValue

from tests.integration._workload import eventually

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("_lease_worker.py")
KEY = "test-lease"
TTL = 15.0  # the shipped default (Lease, CSFABRIC_INGEST_LEASE_TTL), in fabric seconds
RENEW = TTL / 3


class Line(NamedTuple):
    kind: str  # act | stop
    holder: str
    token: int | None
    wall: float


class Replicas:
    """Worker processes competing for one lease and writing one shared action log."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url, self.dir = url, tmp_path
        self.log = tmp_path / "actions.log"
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, name: str, clock: str) -> asyncio.subprocess.Process:
        with (self.dir / f"{name}.stderr").open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                self.url,
                name,
                str(self.log),
                env={**os.environ, "CSFABRIC_CLOCK": clock},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
        self.procs[name] = proc
        ready = self.dir / f"{name}.ready"
        await eventually(ready.exists, within=20, what=self.story)
        return proc

    async def kill(self, name: str) -> float:
        """SIGKILL ``name``; the wall time it was killed at."""
        killed_at = time.time()
        self.procs[name].kill()
        await self.procs[name].wait()
        return killed_at

    def lines(self) -> list[Line]:
        """Every complete line, in the order written."""
        if not self.log.exists():
            return []
        text = self.log.read_text()
        lines = text.splitlines()[: text.count("\n")]
        return [
            Line(kind, holder, None if token == "None" else int(token), float(wall))
            for kind, holder, token, wall in (line.split() for line in lines)
        ]

    def acts(self, holder: str | None = None) -> list[Line]:
        return [x for x in self.lines() if x.kind == "act" and holder in (None, x.holder)]

    def stopped(self, holder: str) -> bool:
        return any(x.kind == "stop" and x.holder == holder for x in self.lines())

    def story(self) -> str:
        counts = {name: len(self.acts(name)) for name in self.procs}
        codes = {name: proc.returncode for name, proc in self.procs.items()}
        tails = {name: (self.dir / f"{name}.stderr").read_text()[-400:] for name in self.procs}
        return f"acts {counts}, exit codes {codes}, stderr tails {tails}"

    async def close(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                await proc.wait()


async def lease_bucket(url: str) -> tuple[Bus, KeyValue]:
    """The lease bucket, created here (not raced by workers) with history to audit terms."""
    bus = await Bus.connect(url, service="leasetest", create_streams=False)
    return bus, await bus.key_value(BUCKET, history=64)


async def check_fencing(kv: KeyValue, acts: list[Line]) -> None:
    """What a downstream recording tokens sees: one holder per token, tokens never go back,
    and each token is a revision its holder wrote (a term it really took)."""
    assert acts, "nobody acted"
    for earlier, later in pairwise(acts):
        assert later.token is not None
        assert earlier.token is not None
        assert later.token >= earlier.token, f"an older term acted after a newer: {later}"
    owners: dict[int, set[str]] = {}
    for act in acts:
        owners.setdefault(cast(int, act.token), set()).add(act.holder)
    assert all(len(who) == 1 for who in owners.values()), owners
    written = {
        entry.revision: json.loads(entry.value or b"{}").get("holder")
        for entry in await kv.history(KEY)
    }
    for token, who in owners.items():
        assert written.get(token) in who, f"token {token} of {who}: KV wrote {written}"


async def test_one_process_holds_the_lease_and_a_survivor_takes_over(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    factor = 5.0  # TTL 15 fabric s = 3 wall s
    bus, kv = await lease_bucket(nats_server.url)
    replicas = Replicas(nats_server.url, tmp_path)
    clock = scaled_spec(factor)
    try:
        await replicas.start("alpha", clock)
        await replicas.start("beta", clock)
        both_ready = time.time()
        await eventually(replicas.acts, within=20, what=replicas.story)
        holder = replicas.acts()[0].holder
        other = "beta" if holder == "alpha" else "alpha"
        # Both compete for more than a TTL: renewals work and the other never gets in.
        await eventually(
            lambda: replicas.acts(holder)[-1].wall - both_ready > (TTL + RENEW) / factor,
            within=20,
            what=replicas.story,
        )
        assert replicas.acts(other) == [], replicas.story()

        killed_at = await replicas.kill(holder)
        await eventually(lambda: replicas.acts(other), within=20, what=replicas.story)
        await eventually(lambda: len(replicas.acts(other)) >= 5, within=5, what=replicas.story)
        acts = replicas.acts()
        await check_fencing(kv, acts)
    finally:
        await replicas.close()
        await bus.close()

    takeover = replicas.acts(other)[0].wall - killed_at
    assert takeover <= (TTL + RENEW) / factor, f"took {takeover:.2f}s; {replicas.story()}"
    assert {x.holder for x in acts} == {holder, other}
    print(f"\nleases: {other} took over {takeover:.2f}s after {holder} was killed")


@pytest.mark.slow
async def test_a_stalled_holder_never_acts_again_after_a_successor_took_over(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    factor = 5.0  # TTL 3 wall s; the holder is stopped for longer than that
    bus, kv = await lease_bucket(nats_server.url)
    replicas = Replicas(nats_server.url, tmp_path)
    clock = scaled_spec(factor)
    try:
        await replicas.start("alpha", clock)
        await replicas.start("beta", clock)
        await eventually(lambda: len(replicas.acts()) >= 10, within=20, what=replicas.story)
        holder = replicas.acts()[0].holder
        other = "beta" if holder == "alpha" else "alpha"
        pid = replicas.procs[holder].pid

        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.time()
        try:
            await eventually(lambda: len(replicas.acts(other)) >= 5, within=20, what=replicas.story)
            # Stopped 4.5 s at TTL 3 s, as in the review's reproduction.
            await asyncio.sleep(max(0.0, stopped_at + 1.5 * TTL / factor - time.time()))
        finally:
            os.kill(pid, signal.SIGCONT)
        stalled = time.time() - stopped_at
        # The stalled holder wakes up with its work still running: it must stop, not act.
        await eventually(lambda: replicas.stopped(holder), within=10, what=replicas.story)
        seen = len(replicas.acts(other))
        await eventually(
            lambda: len(replicas.acts(other)) >= seen + 20, within=10, what=replicas.story
        )
        acts = replicas.acts()
        assert all(proc.returncode is None for proc in replicas.procs.values()), replicas.story()
        await check_fencing(kv, acts)
    finally:
        await replicas.close()
        await bus.close()

    assert stalled > TTL / factor, f"stalled only {stalled:.2f}s"
    first_of_other = next(i for i, act in enumerate(acts) if act.holder == other)
    late = [act for act in acts[first_of_other:] if act.holder == holder]
    assert late == [], f"the stalled holder acted after its successor: {late}"
    print(f"\nleases: {holder} stalled {stalled:.2f}s; {other} took over; {holder} stayed quiet")


@pytest.mark.slow
async def test_clocks_skewed_beyond_the_ttl_never_give_two_actors(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    factor = 10.0  # TTL 1.5 wall s
    base = datetime.now(UTC)
    # Same rate, epochs 2 s apart: the "slow" clock reads 18 fabric s (> TTL) behind.
    fast = scaled_spec(factor, base)
    slow = scaled_spec(factor, base + timedelta(seconds=2))
    wait = 3 * TTL / factor  # three TTLs of competing
    bound = (TTL + RENEW) / factor
    bus, kv = await lease_bucket(nats_server.url)
    replicas = Replicas(nats_server.url, tmp_path)
    try:
        # The holder's clock is behind: its written `expires` looks long past to the taker.
        await replicas.start("slow1", slow)
        await eventually(lambda: replicas.acts("slow1"), within=20, what=replicas.story)
        await replicas.start("fast", fast)
        await asyncio.sleep(wait)
        assert replicas.acts("fast") == [], f"took a live holder's lease: {replicas.story()}"
        killed_at = await replicas.kill("slow1")
        await eventually(lambda: replicas.acts("fast"), within=20, what=replicas.story)
        fast_took = replicas.acts("fast")[0].wall - killed_at

        # The holder's clock is ahead: its `expires` looks far away to the taker.
        await replicas.start("slow2", slow)
        await asyncio.sleep(wait)
        assert replicas.acts("slow2") == [], f"took a live holder's lease: {replicas.story()}"
        killed_at = await replicas.kill("fast")
        await eventually(lambda: replicas.acts("slow2"), within=20, what=replicas.story)
        slow_took = replicas.acts("slow2")[0].wall - killed_at
        await check_fencing(kv, replicas.acts())
    finally:
        await replicas.close()
        await bus.close()

    assert fast_took <= bound, f"took over {fast_took:.2f}s after the kill; {replicas.story()}"
    assert slow_took <= bound, f"took over {slow_took:.2f}s after the kill; {replicas.story()}"
    print(f"\nleases: skew 18 fabric s; takeovers {fast_took:.2f}s and {slow_took:.2f}s")


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
