"""What one replication sweep costs: CloudStack reads, and judging the rows (pure logic).

    .venv/bin/python bench/replication.py [--volumes 1000] [--snapshots 3]
                                          [--out bench/results/replication.json]

A demo world gets ``--volumes`` extra gold volumes in zone-london, each with ``--snapshots``
snapshots tagged ``csfabric:policy=gold`` and copied to zone-manchester (placed in the
simulator's state directly, so setup takes no API calls).  The simulator serves on a free
127.0.0.1 port in this process.  Measured, per policy sweep:

* ``read_s`` — wall time of :func:`read_policy` (listZones, listVolumes, listSnapshots in
  both zones, paged): includes the simulator's own work, which shares this process;
* ``judge_cpu_us_per_volume`` — CPU of :func:`samples` + :func:`copies_to_make` over the
  rows read, per volume: the replication service's own cost per volume-window;
* ``evidence_bytes_per_volume`` — JSON bytes one volume adds to an ``rpo-evidence`` record
  (what ``evidence_chunk`` is sized by: a record must fit 1 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta
from pathlib import Path

from _common import free_port, machine_info, write_json
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import Simulator, World
from csfabric.cloudstack.simulator._state import Snapshot, Tag
from csfabric.dr import RpoEvidence, SnapshotPolicy
from csfabric.kernel import RealClock
from csfabric.replication.logic import copies_to_make, samples
from csfabric.replication.reader import Zones, read_policy

POLICY = SnapshotPolicy.model_validate(
    {
        "selector": {"zone": "zone-london", "tags": {"csfabric:dr-tier": "gold"}},
        "every": "10m",
        "retain": {"count": 6},
        "copyTo": ["zone-manchester"],
        "rpo": "15m",
    }
)


def world(volumes: int, snapshots: int) -> World:
    w = World.demo(1)
    london, manchester = w.zone_named("zone-london"), w.zone_named("zone-manchester")
    now = RealClock().now()
    for i in range(volumes):
        vol = w.add_volume(f"bulk-{i}", london, w.admin.id, 10)
        w.tag("Volume", vol.id, w.admin.id, **{"csfabric:dr-tier": "gold"})
        for k in range(snapshots):
            sid = w.new_id("snapshot")
            created = now - timedelta(minutes=10 * k)
            zones = [london.id, manchester.id]
            snap = Snapshot(
                sid, f"s{i}-{k}", vol.id, london.id, w.admin.id, created, zone_ids=zones
            )
            snap.state = "BackedUp"
            w.snapshots[sid] = snap
            w.tags.append(Tag("csfabric:policy", "gold", "Snapshot", sid, w.admin.id))
    return w


async def main(volumes: int, snapshots: int, out: Path) -> None:
    clock = RealClock()
    sim = Simulator(world(volumes, snapshots), clock=clock, job_latency=0)
    await sim.start("127.0.0.1", free_port())
    keys = sim.keys()["admin"]
    settings = CloudStackSettings(
        endpoint=sim.url,
        key=keys["apikey"],
        secret=keys["secretkey"],
        rate_limit_per_second=None,
        timeout=300,
    )
    try:
        async with CloudStackClient(settings, clock=clock) as client:
            started = time.perf_counter()
            view = await read_policy(client, Zones(client), "gold", POLICY)
            read_s = time.perf_counter() - started
    finally:
        await sim.stop()
    now = clock.now()
    cpu = time.process_time()
    found = samples(now, view.volumes, view.local, view.measured, POLICY.rpo)
    zone = view.dr_zones[0].id
    tasks = copies_to_make(
        view.local,
        view.measured,
        zone,
        now,
        grace=timedelta(minutes=2),
        horizon=timedelta(hours=1),
        attempts={},
        max_attempts=6,
    )
    judge = time.process_time() - cpu
    evidence = RpoEvidence(
        policy="gold", at=now, rpo_s=900, dr_zone="zone-manchester", volumes=found
    )
    size = len(evidence.model_dump_json())
    result = {
        "volumes": len(view.volumes),
        "snapshots_per_zone": len(view.local),
        "copies_to_make": len(tasks),
        "read_s": round(read_s, 3),
        "judge_cpu_us_per_volume": round(1e6 * judge / max(len(view.volumes), 1), 1),
        "evidence_bytes_per_volume": round(size / max(len(found), 1)),
    }
    print(result)
    write_json(out, {"machine": machine_info(), "result": result})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--snapshots", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/replication.json"))
    args = parser.parse_args()
    asyncio.run(main(args.volumes, args.snapshots, args.out))
