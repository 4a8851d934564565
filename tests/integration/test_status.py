"""``csfabric status`` against a real nats-server: every section, the CLI, heartbeats."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from csfabric.cli.status import StatusReport, collect_status
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import LEASE_BUCKET, FabricSettings, Lease
from csfabric.kernel._heartbeat import BUCKET, TTL, Heartbeat
from csfabric.kernel.bus import Bus
from csfabric.kernel.service import ServiceContext, run_service
from nats.js.api import ConsumerConfig

from tests.servers import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
POLICIES = "csfabric_policies"


@pytest.fixture
async def bus(nats_server: NatsServerProcess) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server.url, service="status-test")
    try:
        yield bus
    finally:
        await bus.close()


def _stored(kind: str, name: str, *, version: int, paused: bool) -> bytes:
    """A KV value in the policy store's format (DESIGN.md "Policies", issue 4)."""
    return json.dumps(
        {
            "kind": kind,
            "name": name,
            "version": version,
            "document": {
                "apiVersion": "csfabric/v1",
                "kind": kind,
                "metadata": {"name": name},
                "spec": {"paused": paused},
            },
            "appliedBy": "os:alice",
            "appliedAt": "2026-01-02T03:04:05+00:00",
            "paused": paused,
        }
    ).encode()


async def _populate(bus: Bus) -> Heartbeat:
    heartbeat = Heartbeat(
        bus, "alpha", instance="host.one-42", interval=0.2, ops_url="http://127.0.0.1:19100"
    )
    await heartbeat.start()

    lease = Lease(await bus.key_value(LEASE_BUCKET), "alpha.scheduler", ttl=60, holder="host-a:7")
    assert await lease.acquire()

    # A consumer with 3 messages stored: 1 delivered and not acked, 2 not delivered yet.
    await bus.js.add_consumer(
        "CSFABRIC_EVENTS",
        ConsumerConfig(durable_name="alpha-worker", filter_subject="csfabric.lifecycle.>"),
    )
    for i in range(3):
        await bus.publish("csfabric.lifecycle.environment.created", b"{}", msg_id=f"e{i}")
    sub = await bus.js.pull_subscribe_bind(durable="alpha-worker", stream="CSFABRIC_EVENTS")
    assert len(await sub.fetch(1, timeout=5)) == 1

    await bus.publish("csfabric.dlq.alpha", b"bad-1", msg_id="d1")
    await bus.publish("csfabric.dlq.beta", b"bad-2", msg_id="d2")

    policies = await bus.key_value(POLICIES, history=5)
    for kind, name, version, paused in (
        ("SnapshotPolicy", "nightly", 3, True),
        ("SnapshotPolicy", "hourly", 1, False),
        ("SandboxPolicy", "gone", 1, True),
    ):
        await policies.put(f"{kind}.{name}", _stored(kind, name, version=version, paused=paused))
    await policies.delete("SandboxPolicy.gone")  # a deleted policy is not paused any more
    kill_switch = {"paused": True, "by": "os:bob", "at": "2026-01-02T03:04:06+00:00"}
    await policies.put("_global.pause", json.dumps(kill_switch).encode())
    # Written by someone else, maybe half-migrated: reported, never a crash.
    await policies.put("Broken.value", b"{not json")
    return heartbeat


def _check(report: StatusReport) -> None:
    (alpha,) = [s for s in report.services if s.service == "alpha"]
    assert alpha.instance == "host-one-42"  # a dot would split the KV key: sanitised
    assert alpha.pid == os.getpid()
    assert alpha.ops_url == "http://127.0.0.1:19100"
    assert alpha.age_seconds is not None
    assert 0 <= alpha.age_seconds < 10

    (lease,) = report.leases
    assert (lease.name, lease.holder, lease.expired) == ("alpha.scheduler", "host-a:7", False)
    assert lease.expires is not None
    assert lease.expires > datetime.now(UTC)

    (worker,) = [c for c in report.consumers if c.consumer == "alpha-worker"]
    assert worker.stream == "CSFABRIC_EVENTS"
    assert (worker.num_pending, worker.num_ack_pending, worker.num_redelivered) == (2, 1, 0)

    assert report.dlq.messages == 2
    assert report.dlq.subjects == {"csfabric.dlq.alpha": 1, "csfabric.dlq.beta": 1}

    assert [p.key for p in report.paused_policies] == ["SnapshotPolicy.nightly"]
    (paused,) = report.paused_policies
    assert (paused.kind, paused.name, paused.version) == ("SnapshotPolicy", "nightly", 3)
    assert paused.applied_by == "os:alice"
    assert report.global_pause is not None
    assert (report.global_pause.paused, report.global_pause.by) == (True, "os:bob")

    assert report.problems == ["csfabric_policies/Broken.value: not JSON"]


def _cli_env(tmp_path: Path, nats_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSFABRIC_")}
    # An empty state dir: no dev.json of a real `csfabric dev` may leak in.
    env.update(
        CSFABRIC_STATE_DIR=str(tmp_path / "state"), CSFABRIC_NATS_URL=nats_url, COLUMNS="200"
    )
    env["PYTHONPATH"] = str(REPO)
    return env


async def _cli(tmp_path: Path, nats_url: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "status", *args,
        env=_cli_env(tmp_path, nats_url), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_status_shows_every_section(
    bus: Bus, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    heartbeat = await _populate(bus)
    try:
        _check(await collect_status(bus))

        code, out, err = await _cli(tmp_path, nats_server.url, "--json")
        assert code == 0, err
        _check(StatusReport.model_validate_json(out))

        code, out, err = await _cli(tmp_path, nats_server.url)
        assert code == 0, err
        for text in ("alpha", "host-one-42", "alpha.scheduler", "alpha-worker", "dead letters: 2"):
            assert text in out
        assert "csfabric.dlq.beta" in out
        assert "ALL ACTIONS PAUSED by os:bob" in out
        assert "problem: csfabric_policies/Broken.value: not JSON" in out
    finally:
        await heartbeat.stop()
    # A clean stop withdraws the instance at once instead of after the TTL.
    assert not [s for s in (await collect_status(bus)).services if s.service == "alpha"]


async def test_empty_fabric_has_empty_sections(bus: Bus) -> None:
    report = await collect_status(bus)
    assert report.services == report.leases == report.consumers == report.paused_policies == []
    assert report.dlq.messages == 0
    assert report.global_pause is None
    assert report.problems == []


async def test_heartbeat_refreshes_in_a_ttl_bucket(bus: Bus) -> None:
    heartbeat = Heartbeat(bus, "alpha", interval=0.1)
    await heartbeat.start()
    try:
        kv = await bus.js.key_value(BUCKET)
        assert (await kv.status()).stream_info.config.max_age == TTL
        first = await kv.get(heartbeat.key)
        async with asyncio.timeout(5):
            while (await kv.get(heartbeat.key)).revision == first.revision:
                await asyncio.sleep(0.05)
        value = json.loads((await kv.get(heartbeat.key)).value or b"")
        assert set(value) == {
            "service", "instance", "pid", "host", "started", "seen", "version", "ops_url",
            "warnings",
        }  # fmt: skip
        assert heartbeat.key == f"alpha.{heartbeat.instance}"
        assert "." not in heartbeat.instance
    finally:
        await heartbeat.stop()


async def test_every_service_run_by_the_runtime_heartbeats(
    bus: Bus, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    settings = FabricSettings(nats_url=nats_server.url, state_dir=tmp_path)
    started: dict[str, str] = {}

    async def setup(ctx: ServiceContext) -> None:
        started["ops"] = ctx.ops.url

    stop = asyncio.Event()
    task = asyncio.create_task(run_service("beta", setup, settings=settings, stop=stop))
    try:
        async with asyncio.timeout(15):
            while not (seen := (await collect_status(bus)).services):
                await asyncio.sleep(0.1)
        (beta,) = seen
        assert beta.service == "beta"
        assert beta.ops_url == started["ops"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert (await collect_status(bus)).services == []


async def test_status_without_nats_exits_1_with_the_fix(tmp_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    code, out, err = await _cli(tmp_path, url, "--json")
    assert code == 1
    assert out == ""
    assert f"cannot reach NATS at {url}" in err
    assert "start `csfabric dev`, or set CSFABRIC_NATS_URL" in err
    assert "Traceback" not in err
