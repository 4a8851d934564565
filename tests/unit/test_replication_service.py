"""The replication service against the simulator (loopback socket) on a stepped clock.

Snapshots are made here through the client, tagged as the snapshots service tags them, so
these tests need nothing of that service.  The replicator's ``tick`` is driven directly:
:func:`drive` lets the sockets move and steps the clock through the client's job polls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import pytest
import pytest_asyncio
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import FaultPlan, Simulator, World
from csfabric.dr import ALERT_BREACH, ALERT_RECOVERED, DECISION_EVIDENCE, RpoEvidence
from csfabric.events import ActionEventData, TypedEvent
from csfabric.kernel import LEASE_BUCKET, Lease, LeaseLost, SteppedClock, make_event, open_ledger
from csfabric.kernel.bus import Bus, Delivery
from csfabric.kernel.policy import PolicyStore
from csfabric.kernel.policy._model import parse_document
from csfabric.kernel.testing import MemoryNats, memory_bus, service_context
from csfabric.replication.handlers import Replicator
from csfabric.replication.logic import parse_date
from csfabric.replication.settings import ReplicationSettings
from csfabric.replication.state import BUCKET, DrState, copy_times
from nats.js.errors import NotFoundError

from tests.servers import free_port

T = TypeVar("T")
START = datetime(2026, 12, 6, 9, 50, tzinfo=UTC)
POLICY = "gold-10m"
SHORT_SLEEP = timedelta(seconds=10)
T1M = timedelta(minutes=1)  # job polls (2 s) and the simulated job latency (5 s)


def policy_doc(rpo: str = "15m") -> Any:
    return parse_document(
        {
            "apiVersion": "csfabric/v1",
            "kind": "SnapshotPolicy",
            "metadata": {"name": POLICY},
            "spec": {
                "selector": {"zone": "zone-london", "tags": {"csfabric:dr-tier": "gold"}},
                "every": "10m",
                "timezone": "Europe/London",
                "retain": {"count": 144},
                "copyTo": ["zone-manchester"],
                "rpo": rpo,
            },
        }
    )


async def drive(clock: SteppedClock, work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` while its own sleeps (job polls, the simulated job's latency) pass at
    once; sleepers that were there before (the policy watcher's) are left to their time, and
    so are long ones (the ledger's call deadline: reaching it would fail the call)."""
    before = {id(f) for _, _, f in clock._sleepers}
    task: asyncio.Task[T] = asyncio.ensure_future(work)
    while not task.done():
        await asyncio.sleep(0.002)  # real time: the loopback socket moves
        now = clock.now()
        new = [
            d
            for d, _, f in clock._sleepers
            if id(f) not in before and not f.done() and d - now <= SHORT_SLEEP
        ]
        if not task.done() and new:
            await clock.advance(max(min(new) - now, timedelta(0)))
    return task.result()


@dataclass
class Rig:
    clock: SteppedClock
    sim: Simulator
    client: CloudStackClient
    bus: Bus
    replicator: Replicator
    settings: ReplicationSettings

    @property
    def london(self) -> str:
        return self.sim.world.zone_named("zone-london").id

    @property
    def manchester(self) -> str:
        return self.sim.world.zone_named("zone-manchester").id

    def volumes(self, tier: str) -> list[str]:
        w = self.sim.world
        return sorted(
            t.resourceid
            for t in w.tags
            if t.resourcetype == "Volume" and t.key == "csfabric:dr-tier" and t.value == tier
        )

    async def snapshot(self, volume_id: str, *, copy: bool) -> str:
        params: dict[str, Any] = {
            "volumeid": volume_id,
            "tags": [
                {"key": "csfabric:policy", "value": POLICY},
                {"key": "csfabric:key", "value": f"{volume_id}:{self.clock.now().isoformat()}"},
            ],
        }
        if copy:
            params["zoneids"] = self.manchester
        job = await drive(self.clock, self.client.job("createSnapshot", **params))
        job.raise_for_status()
        return str(job.resource_id)

    async def snapshot_gold(self, *, copy: bool) -> list[str]:
        return [await self.snapshot(v, copy=copy) for v in self.volumes("gold")]

    async def at(self, when: datetime) -> None:
        await self.clock.advance(when - self.clock.now())

    async def tick(self, replicator: Replicator | None = None) -> None:
        await drive(self.clock, (replicator or self.replicator).tick())

    async def in_zone(self, snapshot_id: str, zone_id: str) -> bool:
        rows = await drive(
            self.clock, self.client.list("listSnapshots", id=snapshot_id, zoneid=zone_id)
        )
        return bool(rows)

    async def fresh_replicator(self, **settings: Any) -> Replicator:
        state = DrState(await self.bus.key_value(BUCKET))
        ledger = await open_ledger(self.bus)
        ctx = self.replicator.ctx
        chosen = self.settings.model_copy(update=settings)
        return Replicator(ctx, chosen, self.client, state, ledger)


async def records(bus: Bus, stream: str, subject: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    seq = 1
    while True:
        try:
            msg = await bus.js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append(json.loads(msg.data or b"null"))
        seq = (msg.seq or seq) + 1


async def audits(bus: Bus, decision: str) -> list[dict[str, Any]]:
    found = await records(bus, "CSFABRIC_AUDIT", "csfabric.audit.replication")
    return [r for r in found if r["decision"] == decision]


@pytest_asyncio.fixture
async def rig(tmp_path: Any) -> AsyncIterator[Rig]:
    clock = SteppedClock(START)
    sim = Simulator(World.demo(7), clock=clock, faults=FaultPlan(clock, seed=1), job_latency=5.0)
    await sim.start("127.0.0.1", free_port())
    keys = sim.keys()["admin"]
    cs = CloudStackSettings(
        endpoint=sim.url,
        key=keys["apikey"],
        secret=keys["secretkey"],
        poll_interval=2.0,
        max_retries=0,
        rate_limit_per_second=None,
    )
    client = CloudStackClient(cs, clock=clock)
    bus = await memory_bus(MemoryNats(), service="replication", clock=clock)
    await PolicyStore(bus).apply([policy_doc()], "test:ops")
    ctx = service_context(bus, "replication")
    await ctx.policies.start()
    settings = ReplicationSettings(copy_grace=120, retry_backoff=60, max_attempts=3)
    state = DrState(await bus.key_value(BUCKET))
    replicator = Replicator(ctx, settings, client, state, await open_ledger(bus))
    try:
        yield Rig(clock, sim, client, bus, replicator, settings)
    finally:
        await ctx.policies.stop()
        await client.close()
        await sim.stop()


async def test_snapshots_made_without_zoneids_are_copied_and_confirmed(rig: Rig) -> None:
    await rig.snapshot_gold(copy=True)
    await rig.at(datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    uncopied = await rig.snapshot_gold(copy=False)
    await rig.tick()
    # Within the grace period nothing is copied: createSnapshot zoneids might still be at it.
    assert not any([await rig.in_zone(s, rig.manchester) for s in uncopied])
    assert await audits(rig.bus, "copied") == []

    await rig.at(datetime(2026, 12, 6, 10, 3, tzinfo=UTC))
    await rig.tick()
    assert all([await rig.in_zone(s, rig.manchester) for s in uncopied])
    copied = await audits(rig.bus, "copied")
    assert sorted(r["evidence"]["snapshot"] for r in copied) == sorted(uncopied)
    assert all(r["action"] == "copySnapshot" and r["outcome"] == "success" for r in copied)

    await rig.at(datetime(2026, 12, 6, 10, 3, 30, tzinfo=UTC))
    await rig.tick()
    confirmed = await audits(rig.bus, "copy-confirmed")
    assert sorted(r["evidence"]["snapshot"] for r in confirmed) == sorted(uncopied)
    lags = await copy_times(await rig.bus.key_value(BUCKET), POLICY)
    # Created at 10:00, copied at 10:03, seen complete at the 10:03 sweep at the latest.
    assert len(lags) == 2
    assert all(timedelta(minutes=3) <= g <= timedelta(minutes=4) for g in lags)

    # Nothing outside the selector was touched.
    others = rig.volumes("silver") + rig.volumes("bronze")
    assert not [s for s in rig.sim.world.snapshots.values() if s.volumeid in others]
    # A second sweep copies nothing again.
    await rig.tick()
    assert len(await audits(rig.bus, "copied")) == len(uncopied)


async def test_evidence_at_each_boundary_says_each_volumes_rpo(rig: Rig) -> None:
    await rig.snapshot_gold(copy=True)  # 09:50, complete in manchester
    await rig.at(datetime(2026, 12, 6, 10, 0, 5, tzinfo=UTC))
    await rig.tick()
    [evidence] = await audits(rig.bus, DECISION_EVIDENCE)
    body = evidence["evidence"]
    assert body["at"].startswith("2026-12-06T10:00:00")
    assert body["dr_zone"] == "zone-manchester"
    assert sorted(v["volume_id"] for v in body["volumes"]) == rig.volumes("gold")
    # Made from 09:50 on (each createSnapshot job takes a few simulated seconds).
    assert all(580 <= v["achieved_rpo_s"] <= 600 and not v["breach"] for v in body["volumes"])
    # Mid-window ticks add no evidence; the next boundary does.
    await rig.at(datetime(2026, 12, 6, 10, 5, tzinfo=UTC))
    await rig.tick()
    assert len(await audits(rig.bus, DECISION_EVIDENCE)) == 1
    await rig.at(datetime(2026, 12, 6, 10, 10, tzinfo=UTC))
    await rig.tick()
    assert len(await audits(rig.bus, DECISION_EVIDENCE)) == 2


async def test_a_large_policys_evidence_is_split_into_records_that_each_validate(
    rig: Rig,
) -> None:
    await rig.snapshot_gold(copy=True)
    await rig.at(datetime(2026, 12, 6, 10, 0, 5, tzinfo=UTC))
    await rig.tick(await rig.fresh_replicator(evidence_chunk=1))
    records_ = await audits(rig.bus, DECISION_EVIDENCE)
    parts = [RpoEvidence.model_validate(r["evidence"]) for r in records_]
    assert [len(p.volumes) for p in parts] == [1, 1]
    assert sorted(v.volume_id for p in parts for v in p.volumes) == rig.volumes("gold")
    assert {p.at for p in parts} == {datetime(2026, 12, 6, 10, 0, tzinfo=UTC)}
    assert sorted(r["reason"].split(",")[0] for r in records_) == [
        "1 volume(s) (part 1 of 2)",
        "1 volume(s) (part 2 of 2)",
    ]


async def test_failed_copies_retry_then_breach_then_recover(rig: Rig) -> None:
    gold = rig.volumes("gold")
    await rig.snapshot_gold(copy=True)  # 09:50
    await rig.at(datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    await rig.snapshot_gold(copy=False)
    assert rig.sim.faults is not None
    rig.sim.faults.set("copySnapshot", error_rate=1.0, errorcode=530)

    await rig.at(datetime(2026, 12, 6, 10, 3, tzinfo=UTC))
    await rig.tick()
    failed = await audits(rig.bus, "copy-failed")
    assert len(failed) == len(gold)
    assert all(r["outcome"] == "failure" and "retried in 60s" in r["reason"] for r in failed)
    await rig.tick()  # inside the backoff: no new attempt
    assert len(await audits(rig.bus, "copy-failed")) == len(gold)
    await rig.at(datetime(2026, 12, 6, 10, 4, 30, tzinfo=UTC))
    await rig.tick()
    second = [r for r in await audits(rig.bus, "copy-failed") if r["evidence"]["attempt"] == 2]
    assert len(second) == len(gold)
    assert all("retried in 120s" in r["reason"] for r in second)

    # 10:10: the newest DR copy is from 09:50, 20 minutes back: over the 15-minute RPO.
    await rig.at(datetime(2026, 12, 6, 10, 10, tzinfo=UTC))
    await rig.snapshot_gold(copy=False)
    await rig.tick()
    alerts = await records(rig.bus, "CSFABRIC_ALERTS", ALERT_BREACH)
    assert sorted(a["volume_id"] for a in alerts) == gold
    assert all(1180 <= a["achieved_rpo_s"] <= 1200 for a in alerts)
    assert all("copy to zone-manchester failed: copySnapshot: 530" in a["cause"] for a in alerts)
    # Since the 09:50 copy turned 15 minutes old (each snapshot job takes simulated seconds).
    since = [datetime.fromisoformat(a["since"]) for a in alerts]
    assert all(timedelta(0) <= s - datetime(2026, 12, 6, 10, 5, tzinfo=UTC) < T1M for s in since)
    assert len(await audits(rig.bus, "rpo-breach")) == len(gold)

    # A restarted replica re-evaluates the same boundary: the open breach is not re-sent.
    restarted = await rig.fresh_replicator()
    await rig.tick(restarted)
    assert len(await records(rig.bus, "CSFABRIC_ALERTS", ALERT_BREACH)) == len(gold)

    # Copies resume; at the next boundary the volumes are back within their RPO.
    rig.sim.faults.clear()
    await rig.at(datetime(2026, 12, 6, 10, 13, tzinfo=UTC))
    await rig.tick(restarted)
    await rig.at(datetime(2026, 12, 6, 10, 20, tzinfo=UTC))
    await rig.tick(restarted)
    recovered = await records(rig.bus, "CSFABRIC_ALERTS", ALERT_RECOVERED)
    assert sorted(a["volume_id"] for a in recovered) == gold
    assert all(a["ended"].startswith("2026-12-06T10:20:00") for a in recovered)
    assert all(580 <= a["achieved_rpo_s"] <= 600 for a in recovered)  # the 10:10 copies
    assert len(await audits(rig.bus, "rpo-recovered")) == len(gold)
    state = DrState(await rig.bus.key_value(BUCKET))
    assert await state.breaches(POLICY) == {}


async def test_a_dr_copy_removed_from_the_zone_is_made_again(rig: Rig) -> None:
    copied = await rig.snapshot_gold(copy=True)  # 09:50, by createSnapshot zoneids
    await rig.at(datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    await rig.tick()
    assert await audits(rig.bus, "copied") == []
    for snapshot_id in copied:
        job = await drive(
            rig.clock, rig.client.job("deleteSnapshot", id=snapshot_id, zoneid=rig.manchester)
        )
        job.raise_for_status()
    assert not any([await rig.in_zone(s, rig.manchester) for s in copied])
    await rig.at(datetime(2026, 12, 6, 10, 1, tzinfo=UTC))
    await rig.tick()
    assert sorted(r["evidence"]["snapshot"] for r in await audits(rig.bus, "copied")) == sorted(
        copied
    )
    assert all([await rig.in_zone(s, rig.manchester) for s in copied])
    assert all([await rig.in_zone(s, rig.london) for s in copied])


async def test_a_volume_never_copied_breaches_once_the_policy_had_its_rpo_to_copy_it(
    rig: Rig,
) -> None:
    """The volumes are years old, but the policy was applied at 09:50: they are exposed
    from then on, so the breach begins at 10:05, not before the policy existed."""
    await rig.at(datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    await rig.tick()
    assert await records(rig.bus, "CSFABRIC_ALERTS", ALERT_BREACH) == []
    await rig.at(datetime(2026, 12, 6, 10, 10, tzinfo=UTC))
    await rig.tick()
    alerts = await records(rig.bus, "CSFABRIC_ALERTS", ALERT_BREACH)
    assert sorted(a["volume_id"] for a in alerts) == rig.volumes("gold")
    assert all(a["achieved_rpo_s"] is None for a in alerts)
    assert all(a["since"].startswith("2026-12-06T10:05:00") for a in alerts)
    assert all("no snapshot of the volume" in a["cause"] for a in alerts)


async def test_without_the_lease_nothing_is_copied_or_recorded(rig: Rig) -> None:
    """Every side effect is fenced: a replica whose term is over (here: never began) stops
    at its first act, before copySnapshot and before any audit record or alert."""
    await rig.at(datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    uncopied = await rig.snapshot_gold(copy=False)
    await rig.at(datetime(2026, 12, 6, 10, 3, tzinfo=UTC))
    lease = Lease(await rig.bus.key_value(LEASE_BUCKET), "replication", clock=rig.clock)
    outsider = await rig.fresh_replicator()
    outsider.lease = lease
    with pytest.raises(LeaseLost):
        await rig.tick(outsider)
    assert not any([await rig.in_zone(s, rig.manchester) for s in uncopied])
    assert await records(rig.bus, "CSFABRIC_AUDIT", "csfabric.audit.replication") == []
    assert await records(rig.bus, "CSFABRIC_ALERTS", "csfabric.alert.replication.>") == []


async def test_a_snapshot_copy_event_times_the_lag_exactly(rig: Rig) -> None:
    """Polling bounds a lag by a sweep; the SNAPSHOT.COPY Completed event says when."""
    await rig.at(datetime(2026, 12, 6, 10, 0, tzinfo=UTC))
    uncopied = await rig.snapshot_gold(copy=False)
    await rig.at(datetime(2026, 12, 6, 10, 3, tzinfo=UTC))
    await rig.tick()  # copies made
    created = {}
    for snapshot_id in uncopied:
        rows = await drive(rig.clock, rig.client.list("listSnapshots", id=snapshot_id))
        created[snapshot_id] = parse_date(rows[0]["created"])
    done = datetime(2026, 12, 6, 10, 3, 5, tzinfo=UTC)
    for snapshot_id in uncopied:
        data = ActionEventData.model_validate(
            {
                "event": "SNAPSHOT.COPY",
                "eventDateTime": done.isoformat(),
                "status": "Completed",
                "failed": False,
                "entityuuid": snapshot_id,
                "native": {},
            }
        )
        event = make_event(type="cloudstack.action.SNAPSHOT.COPY", source="test", id=snapshot_id)
        await rig.replicator.on_copy_event(TypedEvent(event, data), cast(Delivery, None))
    await rig.at(datetime(2026, 12, 6, 10, 3, 30, tzinfo=UTC))
    await rig.tick()
    lags = await copy_times(await rig.bus.key_value(BUCKET), POLICY)
    expected = sorted(done - created[s] for s in uncopied)
    assert sorted(lags) == expected
