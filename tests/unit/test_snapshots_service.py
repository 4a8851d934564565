"""The snapshots service against the simulator, on a stepped clock (the issue's "Must show").

Two simulated hours of a 10-minute policy take a few seconds: every in-scope volume gets
one snapshot per aligned window with its copy in the DR zone, nothing else is touched,
retention holds per zone, the achieved RPO stays within 15 minutes at every boundary —
also with 20% of API calls failing — and a suspended project's volumes are skipped.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from csfabric.dr import achieved_rpo, windows_between
from csfabric.kernel import action_key, make_event
from csfabric.snapshots.logic import key_parts

from tests.snapshots_harness import START, Harness, gold_policy, policy_of

pytestmark = pytest.mark.memory

HOURS_2 = 2 * 3600
GOLD = ("ledger-db-data", "patient-records")
NAME = "gold-10m"


def expected_keys(h: Harness, volume: str, policy: str = NAME) -> set[str]:
    spec = policy_of(gold_policy(policy))
    windows = windows_between(START, START + timedelta(seconds=HOURS_2), spec.every, spec.timezone)
    assert len(windows) == 12
    return {action_key(*key_parts(policy, h.volume_id(volume), w)) for w in windows}


async def rpo_at_boundaries(h: Harness, samples: list[timedelta | None]) -> None:
    now = h.clock.now()
    if (now - START).total_seconds() % 600 == 0 and now > START:
        copies = await h.copies("zone-manchester", NAME)
        for volume in GOLD:
            mine = [c for c in copies if c.volume_id == h.volume_id(volume)]
            samples.append(achieved_rpo(now, mine))


async def test_two_hours_one_snapshot_per_window_copied_nothing_else_touched() -> None:
    h = Harness()
    await h.start(gold_policy())
    samples: list[timedelta | None] = []
    await h.run_for(HOURS_2 - 1, on_step=lambda: rpo_at_boundaries(h, samples))

    london = await h.keys_in("zone-london", NAME)
    manchester = await h.keys_in("zone-manchester", NAME)
    for volume in GOLD:
        vid = h.volume_id(volume)
        assert sorted(london[vid]) == sorted(expected_keys(h, volume)), volume
        assert sorted(manchester[vid]) == sorted(expected_keys(h, volume)), volume
    gold_ids = {h.volume_id(v) for v in GOLD}
    assert set(london) == gold_ids, "only in-scope volumes have snapshots"
    touched = {raw["volumeid"] for raw in h.calls_for("createSnapshot")}
    assert touched == gold_ids, "no out-of-scope volume was touched"
    assert h.calls_for("deleteSnapshot") == [], "retain 144 keeps all 12"
    assert max(h.created().values()) == 1
    assert len(samples) == 11 * len(GOLD)  # boundaries 09:10 … 10:50
    assert all(s is not None and s <= timedelta(minutes=15) for s in samples), samples
    requested = await h.audits("snapshot-requested")
    assert len(requested) == 24
    assert {r["evidence"]["window"] for r in requested} == {
        w.key
        for w in windows_between(START, START + timedelta(hours=2), timedelta(minutes=10), "UTC")
    }
    assert all(r["policy"] == NAME and r["policy_version"] == 1 for r in requested)
    await h.stop()


async def test_retention_keeps_count_per_zone_oldest_go_first() -> None:
    h = Harness()
    await h.start(gold_policy(retain={"count": 3}))
    await h.run_for(HOURS_2 - 1)
    await h.run_for(330)  # into the 13th window (11:00 UTC): its snapshot, then a sweep
    for zone in ("zone-london", "zone-manchester"):
        copies = await h.copies(zone, NAME)
        for volume in GOLD:
            mine = sorted(
                (c for c in copies if c.volume_id == h.volume_id(volume)), key=lambda c: c.created
            )
            assert len(mine) == 3, (zone, volume, mine)
            assert all(c.complete for c in mine)
    deletes = h.calls_for("deleteSnapshot")
    assert len(deletes) == 2 * 2 * (13 - 3), "10 oldest per volume and zone, each once"
    assert {d["zoneid"] for d in deletes} == {
        h.zone_id("zone-london"),
        h.zone_id("zone-manchester"),
    }
    deleted = await h.audits("snapshot-deleted")
    assert len(deleted) == len(deletes)
    # Oldest first: every deleted copy is older than every kept one of its volume and zone.
    kept = {
        (c.volume_id, c.zone_id): c.created
        for z in ("zone-london", "zone-manchester")
        for c in await h.copies(z, NAME)
    }
    for record in deleted:
        ev = record["evidence"]
        oldest_kept = min(
            v for (vol, zone), v in kept.items() if vol == ev["volume_id"] and zone == ev["zone_id"]
        )
        assert ev["created"] < oldest_kept.isoformat()
    await h.stop()


async def test_twenty_percent_api_failures_no_miss_nothing_twice() -> None:
    h = Harness(faults=True)
    assert h.faults is not None
    h.faults.set("*", error_rate=0.2, errorcode=530)
    await h.start(gold_policy())
    samples: list[timedelta | None] = []
    await h.run_for(HOURS_2 - 1, on_step=lambda: rpo_at_boundaries(h, samples))
    failed = sum(1 for _, status in h.requests if status == 530)
    assert failed > 20, "faults were injected"
    london = await h.keys_in("zone-london", NAME)
    for volume in GOLD:
        assert sorted(london[h.volume_id(volume)]) == sorted(expected_keys(h, volume))
    accepted = h.created()
    assert len(accepted) == 24
    assert set(accepted.values()) == {1}, "each key created once"
    assert await h.audits("snapshot-missed") == []
    assert all(s is not None and s <= timedelta(minutes=15) for s in samples), samples
    await h.stop()


def _project_volume(world, name: str) -> str:
    project = next(p for p in world.projects.values() if p.name == "project-alpha")
    vol = world.add_volume(name, world.zone_named("zone-london"), project.account_id, 10)
    world.tag("Volume", vol.id, project.account_id, **{"csfabric:dr-tier": "gold"})
    return project.id


async def test_suspended_project_skipped_audited_not_retried() -> None:
    h = Harness()
    project_id = _project_volume(h.world, "alpha-data")
    h.world.projects[project_id].state = "Suspended"
    await h.start(gold_policy())
    await h.run_for(HOURS_2 - 1)
    alpha = h.volume_id("alpha-data")
    assert all(raw["volumeid"] != alpha for raw in h.calls_for("createSnapshot"))
    skipped = [r for r in await h.audits("snapshot-skipped") if r["evidence"]["volume_id"] == alpha]
    assert len(skipped) == 12, "one audited skip per window"
    assert all("Suspended" in r["reason"] and r["result"]["errorcode"] == 531 for r in skipped)
    alerts = await h.stream("CSFABRIC_ALERTS", "csfabric.alert.snapshots.skipped")
    assert len(alerts) == 12
    assert alerts[0] | {"reason": ""} == {
        "policy": NAME,
        "volume": alpha,
        "volume_name": "alpha-data",
        "code": 531,
        "reason": "",
        "window": alerts[0]["window"],
    }
    london = await h.keys_in("zone-london", NAME)
    assert set(london) == {h.volume_id(v) for v in GOLD}, "the others carry on"
    await h.stop()


@pytest.mark.parametrize("code", [531, 535, 431])
async def test_permanent_refusal_is_a_skip_once_per_window(code: int) -> None:
    h = Harness(faults=True)
    assert h.faults is not None
    await h.start(gold_policy())
    h.faults.set("createSnapshot", error_rate=1.0, errorcode=code)
    await h.run_for(3 * 600 - 1)
    refused = [raw for raw, status in h.requests if raw.get("command") == "createSnapshot"]
    per_key = h.created(code)
    assert len(per_key) == 2 * 3, "each volume, each window"
    skipped = await h.audits("snapshot-skipped")
    assert len(skipped) == 6
    assert {r["result"]["errorcode"] for r in skipped} == {code}
    assert await h.audits("snapshot-missed") == []
    if code != 535:  # the client itself retries 535 (reported: it is permanent in CloudStack)
        assert len(refused) == 6, "not retried in the window"
    await h.stop()


async def test_started_mid_window_takes_that_window_at_once_and_restart_does_not_double() -> None:
    h = Harness()
    h.clock._now = START + timedelta(minutes=5)  # the 09:00 window's due times have passed
    await h.start(gold_policy())
    await h.run_for(60)
    first = await h.keys_in("zone-london", NAME)
    assert {len(k) for k in first.values()} == {1}, "the current window, at once"
    await h.stop()
    # A new process on the same backbone and cloud, still in the same window: nothing doubles.
    restarted = Harness(h.world)
    restarted.clock._now = h.clock.now()
    await restarted.start(gold_policy())
    await restarted.run_for(6 * 60)
    again = await restarted.keys_in("zone-london", NAME)
    assert {len(k) for k in again.values()} == {2}, "09:00 once, then 09:10"
    assert len(restarted.created()) == 2, "only the 09:10 window's two snapshots are new"
    await restarted.stop()


async def test_volume_events_keep_the_inventory_current() -> None:
    h = Harness()
    await h.start(gold_policy())
    await h.run_for(60)
    world = h.world
    new = world.add_volume("fresh-gold", world.zone_named("zone-london"), world.admin.id, 5)
    world.tag("Volume", new.id, world.admin.id, **{"csfabric:dr-tier": "gold"})
    gone = h.volume_id("patient-records")
    world.volumes[gone].state = "Destroy"
    for vid, kind in ((new.id, "CREATE"), (gone, "DESTROY")):
        event = make_event(
            type=f"cloudstack.action.VOLUME.{kind}",
            source="/cloudstack/test",
            id=f"ev-{kind}-{vid}",
            subject=vid,
            data={"event": f"VOLUME.{kind}", "status": "Completed", "entityuuid": vid},
        )
        await h.bus.publish_event(event)
    for _ in range(200):  # the consumer fetches on its own
        if new.id in h.service.inventory.volumes and gone not in h.service.inventory.volumes:
            break
        await asyncio.sleep(0.005)
    assert new.id in h.service.inventory.volumes
    assert gone not in h.service.inventory.volumes
    await h.run_for(20 * 60)
    london = await h.keys_in("zone-london", NAME)
    assert len(london[new.id]) >= 2, "the new volume is snapshotted from the next look on"
    assert len(london[gone]) == 1, "the destroyed one no more"
    await h.stop()


async def test_dry_run_decides_and_audits_but_calls_nothing() -> None:
    h = Harness()
    await h.start(gold_policy(dryRun=True))
    await h.run_for(3 * 600 - 1)
    assert h.calls_for("createSnapshot") == []
    decided = await h.audits("snapshot-dry-run")
    assert len(decided) == 2 * 3, "each in-scope volume, each window"
    assert {r["outcome"] for r in decided} == {"dry-run"}
    await h.stop()
