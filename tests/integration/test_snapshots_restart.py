"""The snapshots scheduler SIGKILLed mid-window and restarted: no double, no missed window.

``csfabric run snapshots`` runs as a real process against a real nats-server and the
simulator on a loopback port, all on one scaled clock (30x: a 10-minute window is 20 s of
wall time), with the service's shipped settings.  It is killed with SIGKILL once part of a
window's volumes have their snapshot and the rest are still due, and started again at
once: the new process waits out the dead holder's lease, rebuilds from the ledger and the
snapshots' ``csfabric:key`` tags, and takes the rest of that window and the next.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from csfabric.cloudstack.simulator import Simulator, World
from csfabric.dr import Window, window_at
from csfabric.kernel import ScaledClock, action_key, scaled_spec
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import PolicyStore
from csfabric.kernel.policy._model import parse_document
from csfabric.snapshots.logic import TAG_KEY, key_parts

from tests.servers import NatsServerProcess, free_port
from tests.snapshots_harness import gold_policy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FACTOR = 30.0
VOLUMES = 20
EVERY = timedelta(minutes=10)
TZ = "Europe/London"
NAME = "gold-10m"


@pytest_asyncio.fixture
async def simulator() -> AsyncIterator[tuple[Simulator, ScaledClock]]:
    epoch = datetime.now(UTC)
    clock = ScaledClock(epoch, FACTOR)
    world = World.demo(0)
    london = world.zone_named("zone-london")
    for i in range(VOLUMES - 2):  # with the demo's two gold volumes
        vol = world.add_volume(f"gold-{i:02d}", london, world.admin.id, 10)
        world.tag("Volume", vol.id, world.admin.id, **{"csfabric:dr-tier": "gold"})
    sim = Simulator(world, clock=clock)
    await sim.start(port=free_port())
    try:
        yield sim, clock
    finally:
        await sim.stop()


def service_env(nats_url: str, sim: Simulator, clock: ScaledClock, state: Path) -> dict[str, str]:
    keys = sim.keys()["csfabric"]
    env = {
        **os.environ,
        "CSFABRIC_NATS_URL": nats_url,
        "CSFABRIC_CLOCK": scaled_spec(FACTOR, clock.epoch),
        "CSFABRIC_STATE_DIR": str(state),
        "CSFABRIC_CLOUDSTACK_ENDPOINT": sim.url,
        "CSFABRIC_CLOUDSTACK_KEY": keys["apikey"],
        "CSFABRIC_CLOUDSTACK_SECRET": keys["secretkey"],
        "CSFABRIC_LOG_LEVEL": "WARNING",
    }
    return env


async def start(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csfabric.cli",
        "run",
        "snapshots",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def keys_made(world: World) -> Counter[str]:
    return Counter(t.value for t in world.tags if t.resourcetype == "Snapshot" and t.key == TAG_KEY)


def window_keys(world: World, window: Window) -> set[str]:
    gold = [
        v.id
        for v in world.volumes.values()
        if any(t.key == "csfabric:dr-tier" and t.value == "gold" for t in world.tags_for(v.id))
    ]
    return {action_key(*key_parts(NAME, vid, window)) for vid in gold}


async def until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_sigkill_mid_window_no_double_no_missed_window(
    nats_server: NatsServerProcess, simulator: tuple[Simulator, ScaledClock], tmp_path: Path
) -> None:
    sim, clock = simulator
    world = sim.world
    bus = await Bus.connect(nats_server.url, service="test", clock=clock)
    try:
        policy = gold_policy(NAME, jitter="5m")
        await PolicyStore(bus).apply([parse_document(policy)], "test:ops")
    finally:
        await bus.close()
    env = service_env(nats_server.url, sim, clock, tmp_path / "state")
    first = await start(env)
    try:
        await until(lambda: len(keys_made(world)) > 0, 60, "the first snapshot")
        # The window after the one the service started in: the whole of it is ours.
        started_in = window_at(clock.now(), EVERY, TZ)
        killed_in = window_at(started_in.end, EVERY, TZ)
        wanted = window_keys(world, killed_in)
        assert len(wanted) == VOLUMES

        def part_done() -> bool:
            done = len(wanted & set(keys_made(world)))
            return VOLUMES // 4 <= done <= VOLUMES // 2

        await until(part_done, 60, "part of the window's snapshots")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        done_before = len(wanted & set(keys_made(world)))
        assert done_before < VOLUMES, "killed mid-window"
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    second = await start(env)
    try:
        following = window_at(killed_in.end, EVERY, TZ)
        after = window_keys(world, following)
        await until(lambda: after <= set(keys_made(world)), 120, "the next window's snapshots")
        made = keys_made(world)
        assert wanted <= set(made), "no missed volume in the window of the kill"
        assert max(made.values()) == 1, "no key made twice"
        created = {s.volumeid for s in world.snapshots.values()}
        assert len(created) == VOLUMES
        for window in (killed_in, following):
            starts = [
                s.created
                for s in world.snapshots.values()
                if next((t.value for t in world.tags_for(s.id) if t.key == TAG_KEY), None)
                in window_keys(world, window)
            ]
            assert len(starts) == VOLUMES
            assert all(window.start <= c.replace(tzinfo=UTC) < window.end for c in starts), window
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(second.wait(), 30)
        except TimeoutError:
            second.kill()
            await second.wait()
