"""How long ``csfabric dr plan`` thinks and ``csfabric dr report`` reads and draws.

    .venv/bin/python bench/dr.py [--volumes 10000] [--days 1] [--policies 3]
                                 [--report-volumes 100] [--out bench/results/dr.json]

* ``plan``   — :func:`csfabric.dr.plan` over ``--volumes`` covered volumes (half of them
  attached, two per VM), ten DR copies each, every listing present: the pure part of
  ``dr plan`` (the cloud's listings are the rest, and are the simulator's numbers).
* ``report`` — ``--policies`` policies with one evidence record per 10-minute window for
  ``--days`` days, ``--report-volumes`` volumes each, published through the kernel's
  Auditor to a private nats-server, then read back (``get_msg`` one by one, as the
  command does) and rendered to the HTML page (matplotlib SVG): seconds for each, page size.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import BenchError, machine_info, start_server, write_json
from csfabric.cli.dr_evidence import read_report
from csfabric.cli.dr_html import render_html
from csfabric.dr import (
    DECISION_EVIDENCE,
    Copy,
    Inventory,
    Network,
    Offering,
    PlanVm,
    RpoEvidence,
    RpoSample,
    SnapshotPolicy,
    Template,
    VolumeRef,
    plan,
)
from csfabric.kernel import Auditor, SteppedClock
from csfabric.kernel.bus import Bus, ensure_streams

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = SnapshotPolicy.model_validate(
    {
        "selector": {"zone": "zone-london"},
        "every": "10m",
        "retain": {"count": 6},
        "copyTo": ["zone-manchester"],
        "rpo": "15m",
    }
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def inventory(n: int) -> Inventory:
    vms = {
        f"vm{i}": PlanVm(
            f"vm{i}",
            f"app-{i}",
            "lon",
            "so",
            "Small",
            "t",
            "CentOS",
            ("n",),
            ("net",),
            "admin",
            "d",
        )
        for i in range(n // 4)
    }
    volumes = [
        VolumeRef(
            id=f"v{i}",
            name=f"vol-{i}",
            zone_id="lon",
            zone_name="zone-london",
            virtualmachine_id=f"vm{i // 2}" if i < n // 2 else None,
        )
        for i in range(n)
    ]
    copies = [
        Copy(f"s{i}-{k}", f"v{i}", "man", NOW - timedelta(minutes=10 * k), "BackedUp")
        for i in range(n)
        for k in range(10)
    ]
    return Inventory(
        "man",
        "zone-manchester",
        volumes,
        vms,
        copies,
        [Template("t2", "CentOS", "man")],
        [Network("n2", "net", "man", "admin")],
        [Offering("so", "Small")],
    )


def bench_plan(n: int) -> dict[str, Any]:
    inv = inventory(n)
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        result = plan({"all": POLICY}, inv, NOW)
        runs.append(time.perf_counter() - started)
    if len(result.volumes) != n or len(result.vms) != n // 4 or not result.complete:
        raise BenchError(f"plan lost steps: {len(result.volumes)} volumes, {len(result.vms)} VMs")
    return {
        "volumes": n,
        "vms": n // 4,
        "copies": 10 * n,
        "seconds_median": statistics.median(runs),
    }


async def bench_report(policies: int, days: int, volumes: int) -> dict[str, Any]:
    windows = days * 144
    with tempfile.TemporaryDirectory(prefix="csfabric-bench-") as tmp:
        server = start_server(Path(tmp) / "nats")
        async with server:
            clock = SteppedClock(NOW)
            bus = await Bus.connect(server.url, service="replication", clock=clock)
            await ensure_streams(bus.js)
            audit = Auditor(bus)
            for w in range(windows):
                at = NOW + timedelta(minutes=10 * w)
                for p in range(policies):
                    samples = [
                        RpoSample(
                            volume_id=f"v{v}",
                            volume_name=f"vol-{v}",
                            achieved_rpo_s=300.0 + (v * 7 + w) % 600,
                            breach=False,
                        )
                        for v in range(volumes)
                    ]
                    ev = RpoEvidence(
                        policy=f"p{p}", at=at, rpo_s=900, dr_zone="man", volumes=samples
                    )
                    await audit.emit(
                        action_key=f"{p}:{w}",
                        decision=DECISION_EVIDENCE,
                        reason="bench",
                        evidence=ev.model_dump(mode="json"),
                    )
            started = time.perf_counter()
            data = await read_report(bus.js, NOW, NOW + timedelta(days=days))
            read_s = time.perf_counter() - started
            await bus.close()
    started = time.perf_counter()
    page = render_html(data)
    render_s = time.perf_counter() - started
    if sum(len(p) for p in data.points.values()) != windows * policies:
        raise BenchError("the report lost evidence records")
    return {
        "records": windows * policies,
        "volumes_per_record": volumes,
        "read_seconds": read_s,
        "render_seconds": render_s,
        "html_bytes": len(page.encode()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--policies", type=int, default=3)
    parser.add_argument("--report-volumes", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench/results/dr.json"))
    args = parser.parse_args()
    planned = bench_plan(args.volumes)
    print(
        f"plan: {planned['volumes']} volumes, {planned['vms']} VMs, {planned['copies']} copies"
        f" → {planned['seconds_median'] * 1000:.0f} ms (median of 5)"
    )
    report = asyncio.run(bench_report(args.policies, args.days, args.report_volumes))
    print(
        f"report: {report['records']} evidence records of {report['volumes_per_record']} "
        f"volumes: read {report['read_seconds']:.2f} s, "
        f"render {report['render_seconds']:.2f} s, {report['html_bytes'] / 1024:.0f} KiB page; "
        f"peak RSS {peak_rss_mb():.0f} MiB"
    )
    body = {
        "benchmark": "dr",
        "machine": machine_info(),
        "plan": planned,
        "report": report,
        "peak_rss_mb": peak_rss_mb(),
    }
    write_json(args.out, body)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
