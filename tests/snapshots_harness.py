"""The snapshots service on a stepped clock, against the simulator in-process, in memory.

``Harness`` wires what ``csfabric run snapshots`` wires — a real bus on ``MemoryNats``, the
policy store and watcher, the action ledger, the lease — to a :class:`Simulator` reached
through ``in_process_session``, and records every API request the service makes.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import FaultPlan, Simulator, World, in_process_session
from csfabric.dr import Copy, SnapshotPolicy
from csfabric.kernel import SteppedClock
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import PolicyStore
from csfabric.kernel.policy._model import parse_document
from csfabric.kernel.service import ServiceContext
from csfabric.kernel.testing import MemoryNats, memory_bus, service_context
from csfabric.snapshots.app import Snapshots, start_snapshots
from csfabric.snapshots.logic import TAG_KEY, TAG_POLICY, copies_in_zone
from csfabric.snapshots.settings import SnapshotsSettings
from nats.js.errors import NotFoundError

ENDPOINT = "http://simulator.invalid/client/api"
# 09:00 UTC in June is 10:00 in London: a window boundary of a 10-minute policy.
START = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def gold_policy(name: str = "gold-10m", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "selector": {"zone": "zone-london", "tags": {"csfabric:dr-tier": "gold"}},
        "every": "10m",
        "timezone": "Europe/London",
        "retain": {"count": 144, "maxAge": "7d"},
        "copyTo": ["zone-manchester"],
        "rpo": "15m",
        "jitter": "30s",
    }
    body.update(spec)
    return {
        "apiVersion": "csfabric/v1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": name},
        "spec": body,
    }


class Harness:
    def __init__(self, world: World | None = None, *, faults: bool = False) -> None:
        self.clock = SteppedClock(START)
        self.world = world or World.demo(0)
        self.faults = FaultPlan(self.clock, seed=11) if faults else None
        self.sim = Simulator(self.world, clock=self.clock, faults=self.faults, job_latency=0.5)
        self.requests: list[tuple[dict[str, str], int]] = []
        self.bus: Bus
        self.ctx: ServiceContext
        self.service: Snapshots

    def _observe(self, raw: Mapping[str, str], status: int) -> None:
        self.requests.append((dict(raw), status))

    def settings(self) -> CloudStackSettings:
        keys = self.sim.keys()["csfabric"]
        # No wall-clock rate limit: simulated hours pass in a second of wall time.
        return CloudStackSettings(
            endpoint=ENDPOINT,
            key=keys["apikey"],
            secret=keys["secretkey"],
            rate_limit_per_second=None,
        )

    async def start(
        self, *policies: dict[str, Any], settings: SnapshotsSettings | None = None
    ) -> None:
        server = MemoryNats(clock=self.clock)
        self.bus = await memory_bus(server, service="snapshots", clock=self.clock)
        self.ctx = service_context(self.bus)
        await self.ctx.policies.start()
        if policies:
            await PolicyStore(self.bus).apply([parse_document(p) for p in policies], "test:ops")
            while len(self.ctx.policies.all("SnapshotPolicy")) < len(policies):
                await asyncio.sleep(0.001)
        session = in_process_session(self.sim, self._observe)
        self.service = await start_snapshots(
            self.ctx, settings or SnapshotsSettings(), cloudstack=self.settings(), session=session
        )
        self.probe = CloudStackClient(
            self.settings(), clock=self.clock, session=in_process_session(self.sim)
        )

    async def run_for(self, seconds: float, step: float = 1.0, on_step: Any = None) -> None:
        end = self.clock.now() + timedelta(seconds=seconds)
        while self.clock.now() < end:
            await self.clock.advance(min(step, (end - self.clock.now()).total_seconds()))
            for _ in range(30):
                await asyncio.sleep(0)
            if on_step is not None:
                await on_step()

    async def stop(self) -> None:
        await self.ctx.close(timeout=5)
        await self.ctx.policies.stop()

    # -- what CloudStack shows ---------------------------------------------------------------

    def zone_id(self, name: str) -> str:
        return self.world.zone_named(name).id

    def volume_id(self, name: str) -> str:
        return next(v.id for v in self.world.volumes.values() if v.name == name)

    async def _look(self, **params: Any) -> list[dict[str, Any]]:
        """listSnapshots as the test sees it: injected faults are the service's, not ours
        (and the probe must not wait on the stepped clock it is called between steps of)."""
        faults, self.sim.faults = self.sim.faults, None
        try:
            return await self.probe.list("listSnapshots", **params)
        finally:
            self.sim.faults = faults

    async def copies(self, zone: str, policy: str) -> list[Copy]:
        zone_id = self.zone_id(zone)
        rows: list[dict[str, Any]] = []
        for extra in ({}, {"projectid": "-1"}):
            rows += await self._look(
                listall="true",
                zoneid=zone_id,
                showunique="false",
                tags=[{"key": TAG_POLICY, "value": policy}],
                **extra,
            )
        return copies_in_zone(rows, zone_id)

    async def keys_in(self, zone: str, policy: str) -> dict[str, list[str]]:
        """volume id → the csfabric:key tags of its snapshots in ``zone``."""
        tags = [{"key": TAG_POLICY, "value": policy}]
        rows = await self._look(listall="true", zoneid=self.zone_id(zone), tags=tags)
        rows += await self._look(
            listall="true", projectid="-1", zoneid=self.zone_id(zone), tags=tags
        )
        out: dict[str, list[str]] = {}
        for row in rows:
            key = next(t["value"] for t in row["tags"] if t["key"] == TAG_KEY)
            out.setdefault(row["volumeid"], []).append(key)
        return out

    def created(self, status: int = 200) -> Counter[str]:
        """createSnapshot requests CloudStack accepted, per csfabric:key."""
        out: Counter[str] = Counter()
        for raw, code in self.requests:
            if raw.get("command") == "createSnapshot" and code == status:
                tags = {raw.get(f"tags[{i}].key"): raw.get(f"tags[{i}].value") for i in range(2)}
                out[str(tags.get(TAG_KEY))] += 1
        return out

    def calls_for(self, command: str) -> list[dict[str, str]]:
        return [raw for raw, _ in self.requests if raw.get("command") == command]

    async def stream(self, stream: str, subject: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        seq = 1
        while True:
            try:
                msg = await self.bus.js.get_msg(stream, seq=seq, subject=subject, next=True)
            except NotFoundError:
                return found
            found.append(json.loads(msg.data or b"null"))
            seq = (msg.seq or seq) + 1

    async def audits(self, decision: str | None = None) -> list[dict[str, Any]]:
        records = await self.stream("CSFABRIC_AUDIT", "csfabric.audit.snapshots")
        return [r for r in records if decision is None or r["decision"] == decision]


def policy_of(doc: dict[str, Any]) -> SnapshotPolicy:
    return SnapshotPolicy.model_validate(doc["spec"])


__all__ = ["START", "Harness", "gold_policy", "policy_of"]
