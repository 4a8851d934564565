"""Shared pieces of the benchmarks: a private nats-server, the event, counting, the report.

Everything here is measurement plumbing; what is measured lives in the benchmark scripts.
The server binds to 127.0.0.1 on a port the OS picks, with file storage in a temp dir,
so a run never touches a developer's ``csfabric dev`` server or anything off the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from csfabric.kernel.envelope import make_event
from csfabric.kernel.natsserver import NatsServerProcess, find_nats_server
from nats.js import JetStreamContext
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

HOST = "127.0.0.1"


class BenchError(RuntimeError):
    """A path lost, duplicated or stalled on events: its number would be a lie."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(data_dir: Path) -> NatsServerProcess:
    """A nats-server (not yet started) on a free loopback port, JetStream file store."""
    return NatsServerProcess(free_port(), data_dir, name="bench")


def server_version() -> str:
    binary = find_nats_server()
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip()


def machine_info() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "nats_server": server_version(),
        "nats_py": version("nats-py"),
        "faststream": version("faststream"),
        "opentelemetry_sdk": version("opentelemetry-sdk"),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


EVENT_SUBJECT = "csfabric.cloudstack.action.VM.CREATE"


def vm_create_event(index: int) -> tuple[str, bytes]:
    """A CloudStack ``VM.CREATE`` action event as ingest would normalise it (~300 bytes).

    The entity uuid is the CloudEvent ``subject`` (DESIGN, event types), so the body keeps
    only what is not already in the envelope.

    Every event is about a different VM, so per-resource ordering never serialises them:
    the benchmark measures the consume path, not a queue of one resource.
    """
    vm = uuid.uuid4()
    event = make_event(
        type="cloudstack.action.VM.CREATE",
        source="cloudstack://bench-zone1",
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-{index}-{vm}")),
        subject=str(vm),
        time=datetime(2025, 11, 27, 12, 0, index % 60, tzinfo=UTC),
        data={"status": "Completed", "account": "acme", "description": f"vm-{index} created"},
    )
    return event.id, event.to_json()


def traceparent() -> str:
    """A fresh sampled W3C trace context, as ingest would put on each event."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


class CountingExporter(SpanExporter):
    """Discards spans but counts them, so the report shows tracing really was on."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


async def stream_messages(js: JetStreamContext, stream: str) -> int:
    info = await js.stream_info(stream)
    return int(info.state.messages)


async def wait_until(
    done: Callable[[], bool], within: float, what: str, progress: Callable[[], int]
) -> None:
    """Poll a local counter; a tight interval keeps the end-time error at a millisecond."""
    deadline = time.perf_counter() + within
    while not done():
        if time.perf_counter() > deadline:
            raise BenchError(f"{what}: only {progress()} handled after {within:.0f}s")
        await asyncio.sleep(0.001)


async def wait_acked(
    js: JetStreamContext, stream: str, durable: str, n: int, within: float
) -> dict[str, int]:
    """Until the server has every input ack (acks are fire-and-forget in nats-py)."""
    deadline = time.perf_counter() + within
    while True:
        info = await js.consumer_info(stream, durable)
        acked = info.ack_floor.consumer_seq if info.ack_floor else 0
        if (acked or 0) >= n and not info.num_ack_pending and not info.num_pending:
            return {
                "delivered": int(info.delivered.consumer_seq if info.delivered else 0),
                "redelivered": int(info.num_redelivered or 0),
            }
        if time.perf_counter() > deadline:
            raise BenchError(f"{durable}: server saw {acked} of {n} acks")
        await asyncio.sleep(0.001)


@dataclass
class PathResult:
    key: str
    label: str
    events: int
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)
    ratio_to_raw: float | None = None
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["events_per_s"] = round(self.rate, 1)
        body["seconds"] = round(self.seconds, 4)
        if self.ratio_to_raw is not None:
            body["ratio_to_raw"] = round(self.ratio_to_raw, 3)
        return body


def print_table(title: str, rows: Sequence[PathResult], publish: PathResult | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("path", "what", "events/s", "seconds", "ratio to raw", "check"):
        table.add_column(column, justify="right" if column[0] in "ers" else "left")
    if publish is not None:
        rate, seconds = f"{publish.rate:,.0f}", f"{publish.seconds:.2f}"
        table.add_row(publish.key, publish.label, rate, seconds, "", "")
    for row in rows:
        ratio = "" if row.ratio_to_raw is None else f"{row.ratio_to_raw:.2f}"
        check = "FAILED: " + row.error if row.error else "ok"
        table.add_row(row.key, row.label, f"{row.rate:,.0f}", f"{row.seconds:.2f}", ratio, check)
    Console(width=max(120, Console().width)).print(table)


def write_json(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n")
