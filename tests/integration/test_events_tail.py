"""``csfabric events tail`` as a user runs it, against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import StreamLimits, make_event
from csfabric.kernel.bus import DeadLetter, ensure_streams
from nats.aio.client import Client

from tests.integration.test_dev import REPO, _pythonpath
from tests.servers import free_port

pytestmark = pytest.mark.integration

VM = "6f1c7a0e-2b1d-4c3e-9f5a-1d2e3f4a5b6c"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _env(tmp_path: Path, nats_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSFABRIC_")}
    env["CSFABRIC_STATE_DIR"] = str(tmp_path / "state")
    env["PYTHONPATH"] = _pythonpath()
    if nats_url is not None:
        env["CSFABRIC_NATS_URL"] = nats_url
    return env


@pytest.fixture
async def nc(nats_server: NatsServerProcess) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    await ensure_streams(client.jetstream(), StreamLimits())
    try:
        yield client
    finally:
        await client.close()


def _vm_created(number: int) -> bytes:
    event = make_event(
        type="cloudstack.action.VM.CREATE",
        source="cloudstack",
        id=f"vm-create-{number}",
        subject=VM,
        time=datetime.now(UTC),
        data={
            "category": "action",
            "event": "VM.CREATE",
            "status": "Completed",
            "entity": "VirtualMachine",
            "entityuuid": VM,
            "native": {"username": "admin", "entityuuid": VM},
        },
        traceparent=f"00-{TRACE}-00f067aa0ba902b7-01",
    )
    return event.to_json()


async def _publish_backlog(nc: Client) -> None:
    js = nc.jetstream()
    await js.publish("csfabric.cloudstack.action.VM.CREATE", _vm_created(1))
    audit = {"id": "a1", "time": datetime.now(UTC).isoformat(), "service": "snapshots",
             "decision": "snapshot", "reason": "policy gold due", "outcome": "success",
             "trace_id": TRACE}  # fmt: skip
    await js.publish("csfabric.audit.snapshots", json.dumps(audit).encode())
    # Malformed on purpose: not JSON, with a terminal escape and a secret-looking pair.
    await js.publish("csfabric.cloudstack.action.BROKEN", b"\x1b[2Jnot json apikey=XYZ")
    letter = DeadLetter(service="ingest", reason="bad version '9'", error="EnvelopeError",
                        subject="csfabric.cloudstack.action.X", deliveries=5,
                        time=datetime.now(UTC), original=b"{}")  # fmt: skip
    await js.publish("csfabric.dlq.ingest", letter.original, headers=letter.headers())


async def _start_tail(tmp_path: Path, url: str | None, *args: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "events", "tail", *args,
        env=_env(tmp_path, url), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    watching = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
    assert watching.startswith("watching "), watching
    return proc


async def _lines(proc: asyncio.subprocess.Process, count: int) -> list[str]:
    assert proc.stdout is not None
    return [
        (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().rstrip("\n")
        for _ in range(count)
    ]


async def _interrupt(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    return err.decode()


async def test_since_replays_the_backlog_of_every_stream_as_json(
    nc: Client, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    await _publish_backlog(nc)
    proc = await _start_tail(tmp_path, nats_server.url, "--since", "10m", "--json")
    records = {r["type"]: r for r in map(json.loads, await _lines(proc, 4))}
    err = await _interrupt(proc)
    assert "Traceback" not in err

    created = records["cloudstack.action.VM.CREATE"]
    assert created["summary"] == f"VM.CREATE Completed {VM} by admin"
    assert created["subject"] == "csfabric.cloudstack.action.VM.CREATE"
    assert created["stream"] == "CSFABRIC_EVENTS"
    assert created["trace_id"] == TRACE
    assert created["event"]["id"] == "vm-create-1"
    assert records["audit"]["summary"] == "snapshots snapshot success: policy gold due"
    assert records["audit"]["stream"] == "CSFABRIC_AUDIT"
    assert records["dead-letter"]["summary"].startswith(
        "ingest EnvelopeError from csfabric.cloudstack.action.X: bad version"
    )
    broken = records["message"]
    assert broken["subject"] == "csfabric.cloudstack.action.BROKEN"
    assert broken["raw"] == "\\x1b[2Jnot json apikey=***"
    assert broken["event"] is None


async def test_new_only_shows_what_arrives_after_it_started(
    nc: Client, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    await _publish_backlog(nc)
    proc = await _start_tail(tmp_path, nats_server.url, "csfabric.cloudstack.>")
    await nc.jetstream().publish("csfabric.cloudstack.action.VM.CREATE", _vm_created(2))
    await nc.jetstream().publish("csfabric.audit.x", b"{}")  # outside the pattern
    await nc.jetstream().publish("csfabric.cloudstack.action.BROKEN", b"\xff\xfe")
    [line, broken] = await _lines(proc, 2)
    await _interrupt(proc)
    assert "cloudstack.action.VM.CREATE" in line
    assert f"VM.CREATE Completed {VM} by admin" in line
    assert line.endswith(f"trace={TRACE}")
    assert "\x1b" not in line  # a pipe, not a terminal
    assert "subject=csfabric.cloudstack.action.BROKEN" in broken
    assert "b'\\xff\\xfe'" in broken


async def test_the_url_comes_from_dev_json(
    nc: Client, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    await _publish_backlog(nc)
    state = tmp_path / "state"
    state.mkdir()
    (state / "dev.json").write_text(json.dumps({"nats_url": nats_server.url}))
    proc = await _start_tail(tmp_path, None, "csfabric.audit.>", "--since", "1h")
    [line] = await _lines(proc, 1)
    await _interrupt(proc)
    assert "snapshots snapshot success: policy gold due" in line


async def test_unreachable_nats_is_a_clear_error(tmp_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "events", "tail",
        env=_env(tmp_path, url), cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert out == b""
    assert f"cannot reach NATS at {url}".encode() in err
    assert b"start `csfabric dev`, or set CSFABRIC_NATS_URL" in err
    assert b"Traceback" not in err


async def test_a_lost_connection_ends_the_tail_with_an_error(
    nc: Client, nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    proc = await _start_tail(tmp_path, nats_server.url)
    await nats_server.stop()
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert b"lost the NATS connection" in err
    assert b"Traceback" not in err
