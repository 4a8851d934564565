"""The kill switch: a continuously acting service stops within 1 s and restarts on resume.

The service runs on its own NATS connection, as a real service process would, and asks
its :class:`ActionGate` before each action (every ~20 ms).  Times are measured around the
operator's call, and the measured latencies are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import ActionGate, PolicyWatcher
from csfabric.kernel.policy._model import parse_document
from csfabric.kernel.policy._store import GLOBAL_PAUSE_KEY, PolicyStore
from nats.js.errors import NotFoundError

from tests.integration._workload import eventually
from tests.policykinds import TEST_KIND, register_test_kinds

pytestmark = pytest.mark.integration

OPERATOR = "test:oncall"
INTERVAL = 0.02


class BusyService:
    """Acts every ``INTERVAL`` while its gate allows; records every decision's time."""

    def __init__(self, bus: Bus) -> None:
        self.watcher = PolicyWatcher(bus)
        self.gate = ActionGate(self.watcher)
        self.acted: list[float] = []
        self.refused: list[tuple[float, str]] = []
        self.kill_seen: list[float] = []
        self.watcher.on_change(self._noticed)
        self._task: asyncio.Task[None] | None = None

    def _noticed(self, key: str, value: object) -> None:
        if key == GLOBAL_PAUSE_KEY:
            self.kill_seen.append(time.monotonic())

    async def start(self) -> None:
        await self.watcher.start()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.watcher.stop()

    async def _run(self) -> None:
        while True:
            decision = await self.gate.check(TEST_KIND, "busy", {"env": "prod"})
            now = time.monotonic()
            if decision.allowed:
                self.acted.append(now)
            else:
                self.refused.append((now, decision.reason))
            await asyncio.sleep(INTERVAL)

    def acted_after(self, moment: float) -> list[float]:
        return [t for t in self.acted if t > moment]


@pytest_asyncio.fixture
async def service(nats_server: NatsServerProcess) -> AsyncIterator[BusyService]:
    register_test_kinds()
    operator_bus = await Bus.connect(nats_server.url, service="cli")
    document = {
        "apiVersion": "csfabric/v1",
        "kind": TEST_KIND,
        "metadata": {"name": "busy"},
        "spec": {"action": "act"},
    }
    await PolicyStore(operator_bus).apply([parse_document(document)], OPERATOR)
    await operator_bus.close()
    bus = await Bus.connect(nats_server.url, service="busy", create_streams=False)
    busy = BusyService(bus)
    await busy.start()
    try:
        await eventually(lambda: len(busy.acted) >= 5, within=5, what="service acting")
        yield busy
    finally:
        await busy.stop()
        await bus.close()


async def records(bus: Bus, stream: str, subject: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    seq = 1
    while True:
        try:
            msg = await bus.js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append(json.loads(msg.data or b"null"))
        seq = (msg.seq or seq) + 1


async def test_pause_all_stops_actions_within_a_second_and_resume_restarts_them(
    nats_server: NatsServerProcess, service: BusyService
) -> None:
    bus = await Bus.connect(nats_server.url, service="cli")
    store = PolicyStore(bus)
    try:
        called = time.monotonic()
        await store.pause_all(OPERATOR)
        returned = time.monotonic()
        await asyncio.sleep(1.5)  # long enough to see any straggler
        last = max(service.acted)
        assert last <= returned + 1.0, f"acted {last - returned:.3f}s after pause --all returned"
        assert not service.acted_after(returned + 1.0)
        first_refusal = min(t for t, _ in service.refused if t > called)
        assert "kill switch on since" in service.refused[-1][1]
        assert OPERATOR in service.refused[-1][1]
        stop_latency = max(last, first_refusal) - called

        resumed = time.monotonic()
        await store.resume_all(OPERATOR)
        await eventually(lambda: service.acted_after(resumed), within=1.0, what="acting again")
        restart_latency = service.acted_after(resumed)[0] - resumed
        seen = service.kill_seen[0] - called
        print(
            f"\nkill switch: pause_all call {1000 * (returned - called):.1f} ms;"
            f" service's watcher saw it {1000 * seen:.1f} ms after the call;"
            f" last action {1000 * (last - returned):+.1f} ms after it returned;"
            f" actions stopped {1000 * stop_latency:.1f} ms after the call;"
            f" resume → first action {1000 * restart_latency:.1f} ms"
        )
        assert restart_latency < 1.0

        audit = await records(bus, "CSFABRIC_AUDIT", "csfabric.audit.policy")
        kill = [(r["decision"], r["operator"]) for r in audit if r["decision"] != "apply"]
        assert kill == [("pause", OPERATOR), ("resume", OPERATOR)]
        control = await records(bus, "CSFABRIC_CONTROL", "csfabric.control.all")
        assert [(e["type"], e["data"]) for e in control] == [
            ("control.pause", {"command": "pause", "target": "all", "operator": OPERATOR}),
            ("control.resume", {"command": "resume", "target": "all", "operator": OPERATOR}),
        ]
    finally:
        await bus.close()


async def test_csfabric_pause_all_command_stops_a_running_service(
    nats_server: NatsServerProcess, service: BusyService, tmp_path: Path
) -> None:
    """The same through the real CLI in its own process, as an operator would run it."""
    env = {
        **os.environ,
        "CSFABRIC_NATS_URL": nats_server.url,
        "CSFABRIC_STATE_DIR": str(tmp_path / "state"),
        "CSFABRIC_OPERATOR": "token:oncall@example.org",
    }

    async def csfabric(*args: str) -> float:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csfabric.cli", *args, env=env
        )
        assert await proc.wait() == 0
        return time.monotonic()

    returned = await csfabric("pause", "--all")
    await asyncio.sleep(1.5)
    assert not service.acted_after(returned + 1.0)
    assert "token:oncall@example.org" in service.refused[-1][1]
    resumed = await csfabric("resume", "--all")
    await eventually(lambda: service.acted_after(resumed), within=1.0, what="acting again")


async def test_kill_switch_works_after_a_nats_restart(
    nats_server: NatsServerProcess, service: BusyService
) -> None:
    """A server restart loses the service's KV watch; the watcher must rebuild it at once."""
    await nats_server.restart()
    await eventually(lambda: service.watcher.resyncs >= 1, within=5, what="watch rebuilt")
    bus = await Bus.connect(nats_server.url, service="cli")
    try:
        await PolicyStore(bus).pause_all(OPERATOR)
        returned = time.monotonic()
        await asyncio.sleep(1.5)
        assert not service.acted_after(returned + 1.0)
        assert "kill switch on" in service.refused[-1][1]
    finally:
        await bus.close()
