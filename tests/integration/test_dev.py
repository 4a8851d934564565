"""``csfabric dev`` as a real process tree, its supervisor in-process, and the service runtime."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nats
import pytest
from csfabric.devstack import _supervisor as dev_module
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.devstack._supervisor import READY_PREFIX, DevOptions, DevSupervisor
from csfabric.kernel import FabricSettings, ScaledClock, parse_clock
from csfabric.kernel.bus import STREAMS
from csfabric.kernel.service import ServiceContext, run_service

from tests.servers import free_port, free_ports

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# Runs the real CLI with a service registered by name, as an entry point would.
LAUNCH_DEMO = (
    "from csfabric.kernel.service._registry import register; "
    "register('demo', 'tests.integration.test_dev:demo_setup'); "
    "from csfabric.cli import main; main()"
)


async def demo_setup(ctx: ServiceContext) -> None:
    """A minimal service: one background task, one stop callback."""

    async def idle() -> None:
        while True:
            await ctx.clock.sleep(3600)

    ctx.spawn(idle(), name="idle")


def _pythonpath() -> str:
    """The repository first (for ``tests.*``), then the caller's path (a worktree's code)."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)


def _env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSFABRIC_")}
    env["CSFABRIC_STATE_DIR"] = str(state_dir)
    env["PYTHONPATH"] = _pythonpath()
    # csfabric dev starts the CloudStack simulator; a free port keeps tests independent.
    env["CSFABRIC_SIMULATOR_PORT"] = str(free_port())
    # ...and so does ingest's webhook receiver, which the simulator delivers to.
    webhook_port = free_port()
    env["CSFABRIC_INGEST_WEBHOOK_PORT"] = str(webhook_port)
    env["CSFABRIC_SIMULATOR_WEBHOOK_URL"] = f"http://127.0.0.1:{webhook_port}/webhook"
    return env


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (a temp dir), zombies excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


async def _read_ready_line(proc: asyncio.subprocess.Process, timeout: float) -> dict[str, object]:  # noqa: ASYNC109
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"csfabric dev exited ({proc.returncode}) before ready")
            if line.startswith(READY_PREFIX):
                ready: dict[str, object] = json.loads(line[len(READY_PREFIX) :])
                return ready


@pytest.fixture
async def dev_process(tmp_path: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    state = tmp_path / "state"
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "dev", "--nats-port", str(port),
        "--time-scale", "60",
        env=_env(state), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=(tmp_path / "dev.log").open("wb"),
    )  # fmt: skip
    try:
        yield proc, port
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_dev_runs_nats_writes_dev_json_and_stops_cleanly(
    dev_process: tuple[asyncio.subprocess.Process, int], tmp_path: Path
) -> None:
    proc, port = dev_process
    state = tmp_path / "state"
    ready = await _read_ready_line(proc, 30)

    assert ready["nats_url"] == f"nats://127.0.0.1:{port}"
    assert ready["state_dir"] == str(state)
    assert "ingest" in ready["metrics"]  # every registered service runs
    endpoint = str(ready["cloudstack_endpoint"])
    assert endpoint.startswith("http://127.0.0.1:")
    assert endpoint.endswith("/client/api")
    assert ready["gateway_url"] is None
    assert str(ready["webhook_url"]).endswith("/webhook")
    clock = parse_clock(str(ready["clock"]))
    assert isinstance(clock, ScaledClock)
    assert clock.factor == 60

    dev_file = state / "dev.json"
    assert dev_file.stat().st_mode & 0o777 == 0o600
    content = json.loads(dev_file.read_text())
    assert content["pid"] == proc.pid
    assert {k: content[k] for k in ready} == ready
    nats_pid = content["nats_pid"]
    assert nats_pid in _processes_mentioning(str(state))

    nc = await nats.connect(str(ready["nats_url"]), allow_reconnect=False)
    try:
        js = nc.jetstream()
        for stream, subjects in STREAMS.items():
            info = await js.stream_info(stream)
            assert tuple(info.config.subjects or ()) == subjects
    finally:
        await nc.close()

    # Other commands find the running stack through dev.json (no CSFABRIC_NATS_URL set).
    doctor = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "doctor", "--json",
        env=_env(state), cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await doctor.communicate()
    checks = {c["component"]: c for c in json.loads(out)["checks"]}
    assert checks["NATS JetStream"]["status"] == "ok"
    assert checks["NATS JetStream"]["target"] == ready["nats_url"]

    # A second supervisor on the same state dir refuses to start.
    second = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "dev", "--nats-port", str(free_port()),
        env=_env(state), cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    second_out, second_err = await asyncio.wait_for(second.communicate(), 30)
    assert second.returncode == 1
    assert b"already running" in second_err
    assert READY_PREFIX.encode() not in second_out

    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 15) == 0
    assert time.monotonic() - started < 15
    assert not dev_file.exists()
    assert _processes_mentioning(str(state)) == []
    with pytest.raises(ProcessLookupError):  # reaped, not a zombie
        os.kill(nats_pid, 0)


async def test_supervisor_restarts_crashed_children_and_stops_them_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("CSFABRIC_NATS_URL", raising=False)
    monkeypatch.setenv("PYTHONPATH", _pythonpath())
    monkeypatch.setattr(dev_module, "BACKOFF_FIRST", 0.1)
    caplog.set_level(logging.INFO, logger="csfabric.devstack._supervisor")
    marker = tmp_path / "stubborn.ready"
    stubborn = (
        "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(marker)!r}).touch(); time.sleep(600)"
    )
    nats_port, metrics_port = free_ports(2)
    options = DevOptions(
        state_dir=tmp_path / "state",
        nats_port=nats_port,
        metrics_port=metrics_port,
        stop_timeout=2.0,
        commands={
            "demo": [sys.executable, "-c", LAUNCH_DEMO, "run", "demo"],
            "crashy": [sys.executable, "-c", "raise SystemExit(3)"],
            "stubborn": [sys.executable, "-c", stubborn],
        },
    )
    supervisor = DevSupervisor(options)
    try:
        content = await supervisor.start()
        assert list(content["metrics"]) == ["demo", "crashy", "stubborn"]
        demo_url = content["metrics"]["demo"]
        assert demo_url == f"http://127.0.0.1:{metrics_port}"

        # The demo service, run through the real CLI, answers on the port dev gave it.
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(20):
                while True:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"{demo_url}/readyz") as response:
                            if response.status == 200:
                                break
                    await asyncio.sleep(0.1)
            async with http.get(f"{demo_url}/metrics") as response:
                assert response.status == 200

        crashy = next(c for c in supervisor.children if c.name == "crashy")
        async with asyncio.timeout(10):
            while crashy.restarts < 2 or not marker.exists():
                await asyncio.sleep(0.05)
        assert "service crashy exited with code 3" in caplog.text
        assert "restart #2" in caplog.text
    finally:
        await supervisor.shutdown()

    demo, _, stubborn_child = supervisor.children
    assert demo.proc is not None
    assert demo.proc.returncode == 0  # a clean stop on SIGTERM
    assert stubborn_child.proc is not None
    assert stubborn_child.proc.returncode == -signal.SIGKILL
    assert supervisor.nats is not None
    assert not supervisor.nats.running
    assert not (tmp_path / "state" / "dev.json").exists()
    assert _processes_mentioning(str(tmp_path)) == []


async def test_run_service_stops_cleanly_and_fails_when_a_task_dies(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    settings = FabricSettings(nats_url=nats_server.url, state_dir=tmp_path)
    stopped: list[str] = []
    seen: dict[str, str] = {}

    async def setup(ctx: ServiceContext) -> None:
        async def on_stop() -> None:
            stopped.append(ctx.name)

        seen["ops"] = ctx.ops.url
        ctx.on_stop(on_stop)
        ctx.spawn(asyncio.Event().wait(), name="forever")

    stop = asyncio.Event()
    task = asyncio.create_task(run_service("probe", setup, settings=settings, stop=stop))
    async with asyncio.timeout(15):
        while "ops" not in seen:
            await asyncio.sleep(0.05)
    async with aiohttp.ClientSession() as http, http.get(f"{seen['ops']}/readyz") as response:
        assert response.status == 200
        assert (await response.json())["checks"] == ["nats"]
    stop.set()
    await asyncio.wait_for(task, 15)
    assert stopped == ["probe"]

    async def crashing(ctx: ServiceContext) -> None:
        async def boom() -> None:
            raise ValueError("boom")

        ctx.spawn(boom(), name="boom")

    with pytest.raises(RuntimeError, match="background task probe:boom ended") as info:
        await asyncio.wait_for(run_service("probe", crashing, settings=settings), 15)
    assert isinstance(info.value.__cause__, ValueError)
