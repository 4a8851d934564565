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

from csfabric.devstack._natsserver import NatsServerProcess, find_nats_server
from csfabric.kernel import make_event
from csfabric.kernel._audit import audit_id
from csfabric.kernel.bus import MSG_ID
from nats.js import JetStreamContext
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

HOST = "127.0.0.1"
EVENTS = "CSFABRIC_EVENTS"
AUDIT = "CSFABRIC_AUDIT"


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


def code_version() -> str:
    """The commit measured, marked ``+dirty`` when the kernel has uncommitted edits."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return out.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--", "services") else "")


def machine_info() -> dict[str, Any]:
    return {
        "code": code_version(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "nats_server": server_version(),
        "nats_py": version("nats-py"),
        "faststream": version("faststream"),
        "opentelemetry_sdk": version("opentelemetry-sdk"),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        # Other work on the machine skews every path; a high load means: run again.
        "loadavg_1m": round(os.getloadavg()[0], 2),
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


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of another process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stopwatch:
    """Wall time of a path, and the CPU this process and the server spent meanwhile.

    CPU per event shows where a slow path's time goes: with two cores, a client near one
    CPU-second per second is bound by Python, not by the server.
    """

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self._wall = self._cpu = self._server = 0.0
        self.client_cpu = self.server_cpu = 0.0

    def _server_now(self) -> float:
        return process_cpu(self.server_pid) if self.server_pid else 0.0

    def start(self) -> None:
        self._server = self._server_now()
        self._cpu = time.process_time()
        self._wall = time.perf_counter()

    def stop(self) -> float:
        wall = time.perf_counter() - self._wall
        self.client_cpu = time.process_time() - self._cpu
        self.server_cpu = self._server_now() - self._server
        return wall


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
    memory: dict[str, Any] = field(default_factory=dict)
    client_cpu: float = 0.0
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["events_per_s"] = round(self.rate, 1)
        body["seconds"] = round(self.seconds, 4)
        body["client_cpu"] = round(self.client_cpu, 3)
        body["server_cpu"] = round(self.server_cpu, 3)
        if self.events:
            body["client_cpu_us_per_event"] = round(1e6 * self.client_cpu / self.events, 1)
            body["server_cpu_us_per_event"] = round(1e6 * self.server_cpu / self.events, 1)
        if self.ratio_to_raw is not None:
            body["ratio_to_raw"] = round(self.ratio_to_raw, 3)
        return body


def print_table(title: str, rows: Sequence[PathResult], publish: PathResult | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    columns = (
        "path", "what", "events/s", "seconds", "ratio to raw", "µs CPU/event py|srv", "RSS MiB",
    )  # fmt: skip
    for column in (*columns, "check"):
        table.add_column(column, justify="left" if column in ("path", "what", "check") else "right")
    for row in ([publish] if publish else []) + list(rows):
        ratio = "" if row.ratio_to_raw is None else f"{row.ratio_to_raw:.2f}"
        check = "FAILED: " + row.error if row.error else "ok"
        n = max(row.events, 1)
        cpu = f"{1e6 * row.client_cpu / n:.0f} | {1e6 * row.server_cpu / n:.0f}"
        rate, seconds = f"{row.rate:,.0f}", f"{row.seconds:.2f}"
        mem = row.memory
        rss = f"{mem['rss_mb_start']:.0f}→{mem['rss_mb_end']:.0f}" if mem else ""
        table.add_row(row.key, row.label, rate, seconds, ratio, cpu, rss, check)
    Console(width=max(120, Console().width)).print(table)


def write_json(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n")


def rss_mb() -> float:
    """Resident set size of this process (Linux ``/proc``), in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


class MemoryCurve:
    """RSS and live Python blocks against events handled, sampled every ``interval`` s.

    A path whose memory grows with the events it handled leaks (or buffers without
    bound); flat means the per-event state is released.  RSS alone could hide a slow leak
    in memory the allocator already holds, so ``sys.getallocatedblocks()`` (objects alive)
    is sampled too.  ``progress`` is the path's own counter, set once it has one.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.points: list[tuple[float, int, float, int]] = []  # (s, handled, RSS MiB, blocks)
        self.progress: Callable[[], int] = lambda: 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.points.clear()
        self._task = asyncio.create_task(self._sample(time.perf_counter()))

    async def _sample(self, began: float) -> None:
        while True:
            now = round(time.perf_counter() - began, 2)
            self.points.append((now, self.progress(), rss_mb(), sys.getallocatedblocks()))
            await asyncio.sleep(self.interval)

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        last = self.points[-1][0] if self.points else 0.0
        self.points.append((last, self.progress(), rss_mb(), sys.getallocatedblocks()))
        rss = [p[2] for p in self.points]
        blocks = [p[3] for p in self.points]
        # Growth between the first and last quarter of the run, not start-up allocation.
        quarter = max(1, len(rss) // 4)
        return {
            "rss_mb_start": round(rss[0], 1),
            "rss_mb_max": round(max(rss), 1),
            "rss_mb_end": round(rss[-1], 1),
            "rss_mb_growth_q1_q4": round(
                sum(rss[-quarter:]) / quarter - sum(rss[:quarter]) / quarter, 1
            ),
            "blocks_start": blocks[0],
            "blocks_max": max(blocks),
            "blocks_end": blocks[-1],
            # At most ~20 points in the JSON: the shape, not every sample.
            "curve": [
                [t, n, round(mb, 1), b]
                for t, n, mb, b in self.points[:: max(1, len(self.points) // 20)]
            ],
        }


@dataclass
class Ctx:
    url: str
    n: int
    timeout: float
    provider: TracerProvider
    js: JetStreamContext  # the setup connection: polls consumer state for every path
    watch: Stopwatch
    memory: MemoryCurve = field(default_factory=MemoryCurve)


async def finish(ctx: Ctx, durable: str) -> dict[str, int]:
    return await wait_acked(ctx.js, EVENTS, durable, ctx.n, ctx.timeout)


def result_json(key: str, event_id: str) -> bytes:
    # About the size of an audit record, so the raw path writes what the kernel writes.
    return json.dumps(
        {
            "id": audit_id(f"{key}:{event_id}"),
            "time": "2025-11-27T12:00:00Z",
            "service": f"bench-{key}",
            "decision": "record",
            "reason": "benchmark: VM created",
            "input_event_ids": [event_id],
            "action": "VM.CREATE",
            "outcome": "success",
        },
        separators=(",", ":"),
    ).encode()


async def prepublish(js: JetStreamContext, n: int, server_pid: int | None) -> PathResult:
    """Publish the N input events once (timed on its own, with publish_async)."""
    events = [vm_create_event(i) for i in range(n)]
    watch = Stopwatch(server_pid)
    watch.start()
    futures = []
    for event_id, body in events:
        headers = {MSG_ID: event_id, "traceparent": traceparent()}
        futures.append(await js.publish_async(EVENT_SUBJECT, body, headers=headers))
    acks = await asyncio.gather(*futures)
    seconds = watch.stop()
    stored = await stream_messages(js, EVENTS)
    duplicates = sum(1 for ack in acks if ack.duplicate)
    if stored != n or duplicates:
        raise BenchError(f"publish: {stored} of {n} events stored, {duplicates} duplicates")
    size = sum(len(body) for _, body in events) / n
    label = f"(setup) publish_async of the N events, {size:.0f} B each"
    result = PathResult("publish", label, n, seconds, {"event_bytes": round(size)}, {})
    result.client_cpu, result.server_cpu = watch.client_cpu, watch.server_cpu
    return result
