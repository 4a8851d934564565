"""The snapshots scheduler at scale: N volumes on a 15-minute policy with a DR copy.

    .venv/bin/python bench/snapshots.py [--volumes 100000] [--hours 1] [--rate 200]
                                        [--copy-mode zoneids|copy] [--out FILE]

The real service (``start_snapshots``: inventory, scheduler, ledger, lease, audit,
retention) runs on an in-memory backbone (``csfabric.kernel.testing``) against the
simulator through its in-process transport, on a stepped clock driven as fast as the CPU
allows: time moves to the next deadline only once nothing is left to run, so the numbers
are what the code costs, not what a wall clock allowed.  The client's rate limit is
``--rate`` requests per second of *simulated* time (a token bucket on the fabric clock,
standing in for the client's wall-time one), its concurrency cap the shipped 8.

Measured: the share of due snapshots (volume x window) requested inside their window,
the share of (volume, window boundary) samples whose achieved RPO in the DR zone is within
the policy's 15 minutes, API calls per snapshot, CPU per volume-window (all of this
process, and without the simulator's dispatch), peak RSS of the process (which also holds
the simulator's world and the in-memory NATS: an upper bound of the scheduler's own).

Bench-only patch: the simulator's ``World.tags_for`` scans every tag of the world, which
makes its list commands quadratic in the number of snapshots; here it is indexed (same
answers), so the run measures the scheduler rather than that scan.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import machine_info, write_json
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import Simulator, World, in_process_session
from csfabric.dr import achieved_rpo, windows_between
from csfabric.kernel import Clock, SteppedClock, action_key
from csfabric.kernel.policy import PolicyStore
from csfabric.kernel.policy._model import parse_document
from csfabric.kernel.testing import MemoryNats, memory_bus, service_context
from csfabric.snapshots.app import start_snapshots
from csfabric.snapshots.logic import TAG_KEY, TAG_POLICY, copies_in_zone, key_parts
from csfabric.snapshots.settings import SnapshotsSettings

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "snapshots.json"
START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
ENDPOINT = "http://simulator.invalid/client/api"
NAME = "gold-15m"
RPO = timedelta(minutes=15)


def index_tags(world: World) -> None:
    """Bench-only: ``tags_for`` through an index kept up to date with ``world.tags``."""
    index: dict[str, list[Any]] = defaultdict(list)
    state = {"seen": 0, "list": world.tags}

    def tags_for(resource_id: str) -> list[Any]:
        tags = world.tags
        if tags is not state["list"] or len(tags) < state["seen"]:
            index.clear()
            state.update(seen=0, list=tags)
        for tag in tags[state["seen"] :]:
            index[tag.resourceid].append(tag)
        state["seen"] = len(tags)
        return list(index.get(resource_id, ()))

    world.tags_for = tags_for  # type: ignore[method-assign]


class FabricGate:
    """The client's gate with its token bucket on the fabric clock (simulated seconds)."""

    def __init__(self, clock: Clock, rate: float, concurrency: int) -> None:
        self.clock, self.rate = clock, rate
        self.tokens, self.stamp = max(1.0, rate), clock.monotonic()
        self.slots = asyncio.Semaphore(concurrency)
        self.lock = asyncio.Lock()
        self.in_flight = 0

    async def _token(self) -> None:
        async with self.lock:
            while True:
                now = self.clock.monotonic()
                self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                # At least a millisecond: the stepped clock counts in microseconds, and a
                # wait that rounds to none would never let a token accrue.
                await self.clock.sleep(max((1 - self.tokens) / self.rate, 0.001))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self.slots:
            await self._token()
            self.in_flight += 1
            try:
                yield
            finally:
                self.in_flight -= 1


async def settle() -> None:
    """Until the event loop has nothing ready but us (CPython's ready queue)."""
    loop = asyncio.get_running_loop()
    for _ in range(3):
        await asyncio.sleep(0)
    while loop._ready:  # type: ignore[attr-defined]
        await asyncio.sleep(0)


def policy(volumes: int) -> dict[str, Any]:
    return {
        "apiVersion": "csfabric/v1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": NAME},
        "spec": {
            "selector": {"zone": "zone-london", "tags": {"csfabric:dr-tier": "gold"}},
            "every": "15m",
            "timezone": "Europe/London",
            "retain": {"count": 8},
            "copyTo": ["zone-manchester"],
            "rpo": "15m",
            # Spread over most of the window: 100k calls in 15 minutes at 200/s need it.
            "jitter": "12m",
        },
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    clock = SteppedClock(START)
    world = World(0)
    london = world.zone_named("zone-london")
    for i in range(args.volumes):
        vol = world.add_volume(f"vol-{i:06d}", london, world.admin.id, 10)
        world.tag("Volume", vol.id, world.admin.id, **{"csfabric:dr-tier": "gold"})
    index_tags(world)
    sim = Simulator(world, clock=clock, job_latency=0.5)
    dispatch_cpu = [0.0]
    real_dispatch = sim.dispatch

    async def timed_dispatch(raw: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        # perf_counter, not process_time (a system call that costs more than a dispatch):
        # dispatch never waits, so its wall time is its CPU time on this one thread.
        started = time.perf_counter()
        try:
            return await real_dispatch(raw)
        finally:
            dispatch_cpu[0] += time.perf_counter() - started

    sim.dispatch = timed_dispatch  # type: ignore[method-assign]
    requested: dict[str, datetime] = {}
    calls: defaultdict[str, int] = defaultdict(int)

    def observe(raw: Mapping[str, str], status: int) -> None:
        calls[raw.get("command", "")] += 1
        if raw.get("command") == "createSnapshot" and status == 200:
            key = next(
                raw[k.replace("key", "value")]
                for k in raw
                if k.endswith(".key") and raw[k] == TAG_KEY
            )
            requested.setdefault(key, clock.now())

    keys = sim.keys()["csfabric"]
    cs = CloudStackSettings(endpoint=ENDPOINT, key=keys["apikey"], secret=keys["secretkey"])
    gate = FabricGate(clock, args.rate, cs.max_concurrency)
    server = MemoryNats(clock=clock)
    bus = await memory_bus(server, service="snapshots", clock=clock)
    ctx = service_context(bus)
    await ctx.policies.start()
    await PolicyStore(bus).apply([parse_document(policy(args.volumes))], "bench")
    while not ctx.policies.all("SnapshotPolicy"):
        await asyncio.sleep(0.001)
    session = in_process_session(sim, observe)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    # The service's client, with the fabric-time gate standing in for the wall-time one.
    import csfabric.snapshots.app as app

    real_client = app.CloudStackClient

    def client(*a: Any, **kw: Any) -> CloudStackClient:
        return real_client(*a, **kw, gate=gate)  # type: ignore[arg-type]

    app.CloudStackClient = client  # type: ignore[misc,assignment]
    settings = SnapshotsSettings(copy_mode=args.copy_mode)
    await start_snapshots(ctx, settings, cloudstack=cs, session=session)
    probe = CloudStackClient(
        cs.model_copy(update={"rate_limit_per_second": None}),
        clock=clock,
        session=in_process_session(sim),
    )
    spec = ctx.policies.all("SnapshotPolicy")[0].spec()
    end = START + timedelta(hours=args.hours)
    windows = windows_between(START, end, spec.every, spec.timezone)  # type: ignore[attr-defined]
    vids = [v.id for v in world.volumes.values()]
    due = {action_key(*key_parts(NAME, vid, w)): w for w in windows for vid in vids}
    samples: list[bool] = []
    boundaries = [w.end for w in windows]
    dr = world.zone_named("zone-manchester").id
    setup_cpu = time.process_time() - cpu0
    run_cpu0 = time.process_time()
    dispatch_cpu[0] = 0.0
    sampling_cpu = 0.0
    while clock.now() <= end:
        await settle()
        if boundaries and clock.now() >= boundaries[0]:
            at = boundaries.pop(0)
            s0, before = time.process_time(), dispatch_cpu[0]
            rows = await probe.list(
                "listSnapshots",
                listall="true",
                zoneid=dr,
                showunique="false",
                tags=[{"key": TAG_POLICY, "value": NAME}],
            )
            per_volume = defaultdict(list)
            for c in copies_in_zone(rows, dr):
                if c.created <= at:
                    per_volume[c.volume_id].append(c)
            for vid in vids:
                rpo = achieved_rpo(at, per_volume.get(vid, []))
                samples.append(rpo is not None and rpo <= RPO)
            sampling_cpu += time.process_time() - s0
            dispatch_cpu[0] = before  # the probe's own requests are not the service's
        nxt = clock.next_deadline
        if nxt is None:
            break
        # Never past the hour: the next window's snapshots are not this run's.
        target = min(nxt, boundaries[0] if boundaries else end + timedelta(microseconds=1))
        await clock.advance(max(timedelta(0), target - clock.now()))
    run_cpu = time.process_time() - run_cpu0 - sampling_cpu
    wall = time.perf_counter() - wall0
    await ctx.close(timeout=5)
    inside = sum(1 for k, w in due.items() if k in requested and w.start <= requested[k] < w.end)
    volume_windows = len(due)
    made = sum(calls.get(c, 0) for c in ("createSnapshot",))
    return {
        "volumes": args.volumes,
        "hours": args.hours,
        "windows": len(windows),
        "rate_per_s": args.rate,
        "copy_mode": args.copy_mode,
        "due": volume_windows,
        "requested_inside_window": inside,
        "share_requested_inside_window": inside / volume_windows if volume_windows else 0.0,
        "rpo_samples": len(samples),
        "share_dr_within_rpo": sum(samples) / len(samples) if samples else 0.0,
        "api_calls": dict(calls),
        "api_calls_per_snapshot": sum(calls.values()) / max(1, made),
        "cpu_s_setup": round(setup_cpu, 2),
        "cpu_s_run": round(run_cpu, 2),
        "cpu_s_simulator_dispatch": round(dispatch_cpu[0], 2),
        "cpu_us_per_volume_window": round(run_cpu / volume_windows * 1e6, 1),
        "cpu_us_per_volume_window_without_simulator": round(
            (run_cpu - dispatch_cpu[0]) / volume_windows * 1e6, 1
        ),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "wall_s": round(wall, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=100_000)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of simulated time")
    parser.add_argument("--copy-mode", choices=("zoneids", "copy"), default="zoneids")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(run(args))
    for key, value in result.items():
        print(f"{key:45} {value}")
    body = {"benchmark": "snapshots", "machine": machine_info(), "result": result}
    write_json(args.out, body)
    print(f"wrote {args.out}")
    ok = result["share_requested_inside_window"] == 1.0 and result["share_dr_within_rpo"] == 1.0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
