"""Requests/s the CloudStack simulator serves, and calls/s through the CloudStack client.

    .venv/bin/python bench/simulator.py [--requests 4000] [--concurrency 16,64]
                                        [--out bench/results/simulator.json]

The simulator runs as ``csfabric simulator`` in its own process on a free 127.0.0.1 port
(no faults, no feeds but its listEvents log, job latency 0), so the load generator here
and the server do not share an event loop.  Every request is signed like ``cs`` signs
(v3 with ``expires``; the simulator's own signing module) and must answer 200, or the
path is marked FAILED.  Paths, each at every concurrency:

* ``raw-list``  — aiohttp GET ``listZones`` (signed per request);
* ``raw-vms``   — aiohttp GET ``listVirtualMachines`` (the demo world's VMs, a bigger answer);
* ``raw-async`` — aiohttp GET ``deployVirtualMachine``: the async path (job submitted,
  answered with ``id`` + ``jobid``; the job itself completes in the background);
* ``client``    — ``CloudStackClient.call("listZones")`` (rate limit off, concurrency cap
  = the concurrency), so its signing, gate, span and metric are included;
* ``inproc``    — ``Simulator.dispatch`` in this process, no HTTP: the in-process
  transport's ceiling (signature verification included).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from _common import HOST, free_port, machine_info, process_cpu, write_json
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import Simulator, World, signature
from pydantic import SecretStr

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "simulator.json"
SEED = 1
TARGET = 500.0  # signed requests/s the issue asks of the simulator
Request = Callable[[], Awaitable[int]]


def signed(command: str, pair: dict[str, str], **params: str) -> dict[str, str]:
    expires = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    query = {"command": command, "response": "json", "apiKey": pair["apikey"], **params}
    query.update(signatureVersion="3", expires=expires)
    query["signature"] = signature(query, pair["secretkey"])
    return query


async def drive(request: Request, total: int, concurrency: int) -> tuple[float, Counter[int]]:
    """``total`` requests from ``concurrency`` workers; wall seconds and status counts."""
    statuses: Counter[int] = Counter()
    left = total

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            statuses[await request()] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, statuses


async def start_simulator(state: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "simulator", "--port", str(port),
        "--seed", str(SEED), "--state-dir", str(state), "--job-latency", "0",
        stdout=asyncio.subprocess.PIPE, stderr=(state / "simulator.log").open("wb"),
        env={**os.environ, "CSFABRIC_LOG_LEVEL": "WARNING", "CSFABRIC_CLOCK": "real"},
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if b"ready" not in line:
        raise RuntimeError(f"simulator did not start; see {state / 'simulator.log'}")
    return proc, f"http://{HOST}:{port}/client/api"


def row(path: str, concurrency: int, n: int, seconds: float, cpu: tuple[float, float],
        statuses: Counter[int]) -> dict[str, Any]:  # fmt: skip
    ok = statuses.get(200, 0) == n
    return {
        "path": path,
        "concurrency": concurrency,
        "requests": n,
        "seconds": round(seconds, 3),
        "requests_per_s": round(n / seconds, 1),
        "client_cpu_us_per_request": round(1e6 * cpu[0] / n, 1),
        "server_cpu_us_per_request": round(1e6 * cpu[1] / n, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "error": None if ok else f"non-200 answers: {dict(statuses)}",
    }


async def measure(
    path: str, request: Request, n: int, concurrency: int, server_pid: int | None
) -> dict[str, Any]:
    await drive(request, min(200, n), concurrency)  # warm up connections and caches
    server0 = process_cpu(server_pid) if server_pid else 0.0
    cpu0 = time.process_time()
    seconds, statuses = await drive(request, n, concurrency)
    cpu = (time.process_time() - cpu0, (process_cpu(server_pid) - server0) if server_pid else 0.0)
    return row(path, concurrency, n, seconds, cpu, statuses)


async def via_client(
    http: aiohttp.ClientSession, endpoint: str, pair: dict[str, str], n: int, c: int, pid: int
) -> dict[str, Any]:
    settings = CloudStackSettings(
        endpoint=endpoint, key=SecretStr(pair["apikey"]), secret=SecretStr(pair["secretkey"]),
        rate_limit_per_second=None, max_concurrency=c, max_retries=0,
    )  # fmt: skip
    async with CloudStackClient(settings, session=http) as client:

        async def call() -> int:
            await client.call("listZones")
            return 200  # a failure raises, and fails the run

        return await measure("client", call, n, c, pid)


async def run(n: int, levels: list[int]) -> list[dict[str, Any]]:
    world = World.demo(SEED)  # the same seed: the same ids and keys as the server's
    pair = world.keys()["csfabric"]
    zone = next(iter(world.zones.values())).id
    deploy = {"zoneid": zone, "serviceofferingid": world.service_offering_id,
              "templateid": world.template_id}  # fmt: skip
    rows: list[dict[str, Any]] = []
    # Path by path, the async one last: each deploy adds a VM, which would make every
    # later listVirtualMachines answer bigger than the one measured before it.
    paths: list[tuple[str, str, dict[str, str]]] = [
        ("raw-list", "listZones", {}),
        ("raw-vms", "listVirtualMachines", {"listall": "true"}),
        ("client", "listZones", {}),
        ("raw-async", "deployVirtualMachine", deploy),
    ]
    with tempfile.TemporaryDirectory(prefix="csfabric-bench-sim-") as tmp:
        proc, endpoint = await start_simulator(Path(tmp))
        try:
            for path, command, params in paths:
                for c in levels:
                    async with aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=c)
                    ) as http:
                        if path == "client":
                            rows.append(await via_client(http, endpoint, pair, n, c, proc.pid))
                            continue

                        async def request(
                            command: str = command, params: dict[str, str] = params
                        ) -> int:
                            query = signed(command, pair, **params)
                            async with http.get(endpoint, params=query) as response:
                                await response.read()
                                return response.status

                        rows.append(await measure(path, request, n, c, proc.pid))
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 15)
    local = Simulator(World.demo(SEED), job_latency=0)

    async def in_process() -> int:
        status, _ = await local.dispatch(signed("listZones", pair))
        return status

    rows.append(await measure("inproc", in_process, n * 2, 1, None))
    await local.stop()
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="csfabric simulator: signed requests/s (127.0.0.1, own process)")
    for column in ("path", "conc.", "requests/s", "requests", "µs CPU/req client|server", "check"):
        table.add_column(column, justify="left" if column in ("path", "check") else "right")
    for r in rows:
        cpu = f"{r['client_cpu_us_per_request']:.0f} | {r['server_cpu_us_per_request']:.0f}"
        check = "FAILED: " + r["error"] if r["error"] else "ok"
        rate = f"{r['requests_per_s']:,.0f}"
        table.add_row(r["path"], str(r["concurrency"]), rate, str(r["requests"]), cpu, check)
    Console(width=max(110, Console().width)).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", default="16,64")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    levels = [int(c) for c in args.concurrency.split(",")]
    rows = asyncio.run(run(args.requests, levels))
    print_rows(rows)
    served = [r for r in rows if r["path"].startswith("raw-")]
    slowest = min(r["requests_per_s"] for r in served)
    body = {
        "benchmark": "simulator",
        "machine": machine_info(),
        "target_requests_per_s": TARGET,
        "slowest_socket_path_requests_per_s": slowest,
        "meets_target": slowest >= TARGET,
        "paths": rows,
    }
    write_json(args.out, body)
    verdict = "meets" if slowest >= TARGET else "MISSES"
    print(f"slowest socket path {slowest:,.0f} requests/s {verdict} the {TARGET:.0f}/s target")
    print(f"wrote {args.out}")
    return 0 if not any(r["error"] for r in rows) and slowest >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
