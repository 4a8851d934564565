"""``csfabric dev --with rabbitmq|kafka|powerdns`` and the demo policies (``--no-demo``)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from csfabric.devstack import DEMO_POLICIES, demo_files, load_demo_policies
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.devstack._supervisor import READY_PREFIX, DevOptions, DevSupervisor
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import PolicyStore, load_policies
from csfabric.kernel.policy._model import PolicyBase, register_kind, unregister_kind

from tests.integration.test_dev import _env, _processes_mentioning, _read_ready_line
from tests.servers import free_port, free_ports

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PDNS_HINT = "apt-get install pdns-server pdns-backend-sqlite3"
GOOD = """\
apiVersion: csfabric/v1
kind: DevDemoPolicy
metadata:
  name: hello
spec:
  greeting: hi
"""
UNKNOWN_KIND = GOOD.replace("DevDemoPolicy", "NotInstalledPolicy").replace("hello", "other")


class DevDemoSpec(PolicyBase):
    greeting: str = "hello"


@pytest.fixture
def demo_kind() -> Iterator[str]:
    register_kind("DevDemoPolicy", DevDemoSpec)
    try:
        yield "DevDemoPolicy"
    finally:
        unregister_kind("DevDemoPolicy")


@pytest.fixture
def demo_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "demo"
    (directory / "nested").mkdir(parents=True)
    (directory / "a-good.yaml").write_text(GOOD)
    (directory / "nested" / "b-unknown.yml").write_text(UNKNOWN_KIND)
    (directory / "README.md").write_text("not a policy")
    return directory


async def _start_dev(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    nats_port, metrics_port = free_ports(2)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "dev", "--nats-port", str(nats_port),
        "--metrics-port", str(metrics_port), *args,
        env=env or _env(tmp_path / "state"), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


@pytest.fixture
async def cleanup() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    started: list[asyncio.subprocess.Process] = []
    yield started
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_with_kafka_runs_a_broker_and_stops_it(
    tmp_path: Path, cleanup: list[asyncio.subprocess.Process]
) -> None:
    kafka_port = free_port()
    proc = await _start_dev(tmp_path, "--with", "kafka", "--kafka-port", str(kafka_port))
    cleanup.append(proc)
    ready = await _read_ready_line(proc, 30)
    bootstrap = f"127.0.0.1:{kafka_port}"
    assert ready["kafka_bootstrap"] == bootstrap
    content = json.loads((tmp_path / "state" / "dev.json").read_text())
    assert content["kafka_bootstrap"] == bootstrap
    tansu_pid = content["tansu_pid"]
    assert tansu_pid in _processes_mentioning(bootstrap)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await producer.start()
    try:
        metadata = await producer.send_and_wait("dev-with-kafka", b"hello", key=b"k")
        assert metadata.offset == 0
    finally:
        await producer.stop()

    await _stop(proc)
    assert _processes_mentioning(bootstrap) == []
    assert _processes_mentioning(str(tmp_path / "state")) == []
    with pytest.raises(ProcessLookupError):
        os.kill(tansu_pid, 0)


async def test_with_rabbitmq_uses_the_local_broker(
    tmp_path: Path, rabbitmq_url: str, cleanup: list[asyncio.subprocess.Process]
) -> None:
    proc = await _start_dev(tmp_path, "--with", "rabbitmq", "--no-demo")
    cleanup.append(proc)
    ready = await _read_ready_line(proc, 30)
    assert ready["rabbitmq_url"] == "amqp://guest:***@127.0.0.1:5672/"  # never the password
    content = json.loads((tmp_path / "state" / "dev.json").read_text())
    assert content["rabbitmq_url"] == rabbitmq_url
    await _stop(proc)


async def test_with_rabbitmq_not_running_exits_2_with_the_hint(tmp_path: Path) -> None:
    env = _env(tmp_path / "state")
    env["CSFABRIC_RABBITMQ_URL"] = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    proc = await _start_dev(tmp_path, "--with", "rabbitmq", env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert READY_PREFIX.encode() not in out
    assert b"RabbitMQ not reachable" in err
    assert b"rabbitmq-server -detached" in err
    assert _processes_mentioning(str(tmp_path / "state")) == []  # nothing was started


async def test_with_powerdns(tmp_path: Path, cleanup: list[asyncio.subprocess.Process]) -> None:
    api_port, dns_port = free_ports(2)
    proc = await _start_dev(
        tmp_path, "--with", "powerdns",
        "--powerdns-port", str(api_port), "--powerdns-dns-port", str(dns_port),
    )  # fmt: skip
    cleanup.append(proc)
    installed = shutil.which("pdns_server") or os.access("/usr/sbin/pdns_server", os.X_OK)
    if not installed:
        # Not installed here: the failure must say how to install it, and start nothing.
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 2
        assert READY_PREFIX.encode() not in out
        assert PDNS_HINT.encode() in err
        assert _processes_mentioning(str(tmp_path / "state")) == []
        return
    ready = await _read_ready_line(proc, 30)
    url = f"http://127.0.0.1:{api_port}"
    assert ready["powerdns_url"] == url
    dev_file = tmp_path / "state" / "dev.json"
    assert dev_file.stat().st_mode & 0o777 == 0o600
    key = json.loads(dev_file.read_text())["powerdns_api_key"]
    assert key
    assert key not in json.dumps(ready)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/api/v1/servers/localhost", headers={"X-API-Key": key}) as response,
    ):
        assert response.status == 200
    await _stop(proc)
    assert _processes_mentioning(str(tmp_path / "state")) == []


async def test_demo_policies_apply_valid_files_and_skip_the_rest(
    nats_server: NatsServerProcess, demo_kind: str, demo_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bus = await Bus.connect(nats_server.url, service="dev-test")
    try:
        assert await load_demo_policies(bus, demo_dir, "os:tester") == [f"{demo_kind}.hello"]
        assert "b-unknown.yml" in caplog.text
        assert "NotInstalledPolicy" in caplog.text
        stored = await PolicyStore(bus).get(demo_kind, "hello")
        assert stored is not None
        assert (stored.version, stored.applied_by) == (1, "os:tester")
        # Every `csfabric dev` start applies them again: unchanged, so no new version.
        await load_demo_policies(bus, demo_dir, "os:tester")
        again = await PolicyStore(bus).get(demo_kind, "hello")
        assert again is not None
        assert again.version == 1
        assert await load_demo_policies(bus, demo_dir / "missing", "os:tester") == []
    finally:
        await bus.close()


@pytest.mark.parametrize("demo", [True, False], ids=["demo", "no-demo"])
async def test_dev_loads_demo_policies_unless_told_not_to(
    tmp_path: Path, demo_kind: str, demo_dir: Path, demo: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CSFABRIC_NATS_URL", raising=False)
    nats_port, metrics_port = free_ports(2)
    options = DevOptions(
        state_dir=tmp_path / "state",
        nats_port=nats_port,
        metrics_port=metrics_port,
        commands={},
        demo=demo,
        demo_dir=demo_dir,
    )
    supervisor = DevSupervisor(options)
    try:
        await supervisor.start()
        assert supervisor.demo_policies == ([f"{demo_kind}.hello"] if demo else [])
        bus = await Bus.connect(supervisor.nats_url, service="dev-test")
        try:
            stored = await PolicyStore(bus).list()
        finally:
            await bus.close()
        assert [p.key for p in stored] == ([f"{demo_kind}.hello"] if demo else [])
    finally:
        await supervisor.shutdown()


def test_the_repository_demo_policies_are_valid() -> None:
    # `csfabric dev` skips a bad demo file with a warning; here it fails the suite instead.
    assert DEMO_POLICIES == REPO / "policies" / "demo"
    assert DEMO_POLICIES.is_dir()
    files = demo_files(DEMO_POLICIES)
    if files:  # none until a service adds its kind's demo
        load_policies(files)  # raises PolicyLoadError naming every problem
