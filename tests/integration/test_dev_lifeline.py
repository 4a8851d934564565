"""``csfabric dev``'s children end with it, whatever ends it; a port is taken only when listened
on (TIME_WAIT is not "in use")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from csfabric.devstack import SimulatorServer, port_free, require_port
from csfabric.devstack._lifeline import GRACE
from csfabric.kernel import ConfigError
from csfabric.kernel.service import ServiceContext

from tests.integration.test_dev import REPO, _env, _processes_mentioning, _read_ready_line
from tests.servers import free_port

pytestmark = pytest.mark.integration

LAUNCH_HANG = (
    "from csfabric.kernel.service._registry import register; "
    "register('hang', 'tests.integration.test_dev_lifeline:hang_setup'); "
    "from csfabric.cli import main; main()"
)


async def hang_setup(ctx: ServiceContext) -> None:
    """A service whose stop never ends (with CSFABRIC_STOP_TIMEOUT at an hour)."""

    async def never() -> None:
        await asyncio.Event().wait()

    ctx.on_stop(never)


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid``, read from /proc before it dies."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            todo += [k for k in kids if k not in found]
            found.update(kids)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; whoever adopted it reaps it


async def _until_gone(pids: set[int], within: float) -> set[int]:
    """Waits (up to a generous bound: the machine is shared) until none of ``pids`` runs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (left := {p for p in pids if _alive(p)}) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    return left


async def _until_ready(ops_url: str) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(60):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{ops_url}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


@pytest.fixture
async def dev(tmp_path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "dev", "--nats-port", str(free_port()),
        env=_env(tmp_path / "state"), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=(tmp_path / "dev.log").open("wb"),
    )  # fmt: skip
    try:
        await _read_ready_line(proc, 60)
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_sigkill_of_dev_ends_every_child(
    dev: asyncio.subprocess.Process, tmp_path: Path
) -> None:
    content = json.loads((tmp_path / "state" / "dev.json").read_text())
    # Ingest connected and set up (a service stopping before that has nothing to drain).
    await _until_ready(content["metrics"]["ingest"])
    children = _descendants(dev.pid)
    # nats-server (Go), the simulator and ingest (Python): the three kinds of child.
    assert {content["nats_pid"], content["simulator_pid"]} <= children
    assert len(children) >= 3
    assert all(_alive(pid) for pid in children)

    dev.kill()
    await dev.wait()
    # Their NATS dies with them, so a service's clean stop cannot drain: after GRACE
    # seconds it exits anyway (the bound here is generous: the machine is shared).
    assert await _until_gone(children, within=GRACE + 20) == set()
    assert _processes_mentioning(str(tmp_path / "state")) == []


async def test_a_service_whose_stop_hangs_still_ends_after_a_sigkill_of_dev(
    tmp_path: Path,
) -> None:
    state, nats_port, metrics_port = tmp_path / "state", free_port(), free_port()
    supervisor = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from csfabric.devstack._supervisor import DevOptions, run_dev\n"
        f"argv = [sys.executable, '-c', {LAUNCH_HANG!r}, 'run', 'hang']\n"
        f"options = DevOptions(Path({str(state)!r}), {nats_port}, {metrics_port}, demo=False,\n"
        "                      commands={'hang': argv})\n"
        "sys.exit(asyncio.run(run_dev(options)))\n"
    )
    env = {**_env(state), "CSFABRIC_STOP_TIMEOUT": "3600"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", supervisor, env=env, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=(tmp_path / "dev.log").open("wb"),
    )  # fmt: skip
    try:
        ready = await _read_ready_line(proc, 60)
        await _until_ready(ready["metrics"]["hang"])  # type: ignore[index]
        async with asyncio.timeout(60):  # set up, its signal handlers installed
            while '"message": "hang started"' not in (tmp_path / "dev.log").read_text():
                await asyncio.sleep(0.1)
        children = _descendants(proc.pid)
        assert len(children) >= 3  # nats-server, the simulator, hang
    finally:
        proc.kill()
        await proc.wait()
    # Its stop would take an hour; the lifeline ends it GRACE seconds after dev died.
    assert await _until_gone(children, within=GRACE + 20) == set()


async def test_sighup_stops_dev_as_cleanly_as_ctrl_c(
    dev: asyncio.subprocess.Process, tmp_path: Path
) -> None:
    content = json.loads((tmp_path / "state" / "dev.json").read_text())
    await _until_ready(content["metrics"]["ingest"])
    children = _descendants(dev.pid)
    assert children
    dev.send_signal(signal.SIGHUP)
    assert await asyncio.wait_for(dev.wait(), 30) == 0
    assert not (tmp_path / "state" / "dev.json").exists()
    assert {pid for pid in children if _alive(pid)} == set()
    log = (tmp_path / "dev.log").read_text()
    assert '"message": "stopped"' in log
    assert '"message": "ingest stopping"' in log  # stopped by dev, in order
    assert "ignored SIGTERM" not in log
    assert "Traceback" not in log


async def test_a_tied_simulator_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    # The parent is a plain script that starts the simulator the way csfabric dev does.
    state, port = tmp_path / "state", free_port()
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from csfabric.devstack import SimulatorServer\n"
        f"sim = SimulatorServer(Path({str(state)!r}), {port}, 'real', webhook_url=None)\n"
        "asyncio.run(sim.start())\n"
        "print(sim.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    assert SimulatorServer.tied_to_parent
    parent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, env=_env(state), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        pid = int(await asyncio.wait_for(parent.stdout.readline(), 60))
        assert _alive(pid)
    finally:
        parent.kill()
        await parent.wait()
    assert await _until_gone({pid}, within=30) == set()
    assert port_free(port)


def _time_wait_on(port: int) -> bool:
    """Whether the kernel holds a TIME_WAIT connection (state 06) on local ``port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, _remote, state = line.split()[1:4]
            if int(local.rsplit(":", 1)[1], 16) == port and state == "06":
                return True
    return False


def test_a_port_in_time_wait_is_free_and_a_listened_one_is_refused() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is in use: something listens"):
        require_port(port, "--nats-port")
    served.close()  # the side that closes first keeps TIME_WAIT, here on `port`
    client.close()
    listener.close()
    assert _time_wait_on(port)
    assert port_free(port)
    require_port(port, "--nats-port")


async def test_dev_refuses_a_port_something_listens_on(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csfabric.cli", "dev", "--nats-port", str(port),
            env=_env(tmp_path / "state"), cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use: something listens on it".encode() in err
    assert b"--nats-port" in err
    assert out == b""


async def test_children_log_in_the_format_dev_chose(tmp_path: Path) -> None:
    log_path = tmp_path / "dev.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "dev", "--nats-port", str(free_port()),
        "--log-format", "text",
        env=_env(tmp_path / "state"), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=log_path.open("wb"),
    )  # fmt: skip
    try:
        ready = await _read_ready_line(proc, 60)  # still JSON: scripts parse it
        assert "ingest" in ready["metrics"]  # type: ignore[operator]
        async with asyncio.timeout(60):
            while " ingest started" not in log_path.read_text():
                await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    lines = log_path.read_text().splitlines()
    services = {line.split()[2] for line in lines if line[:2].isdigit()}
    assert {"dev", "ingest"} <= services
    assert not [line for line in lines if line.startswith("{")]
    assert "\x1b[" not in log_path.read_text()  # a file, not a terminal: no colour
    simulator_log = tmp_path / "state" / "simulator" / "simulator.log"
    assert " simulator ready" in simulator_log.read_text()
