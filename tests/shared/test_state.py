"""KV buckets and what the kernel builds on them — leases, the action ledger, heartbeats —
each case in memory and on nats-server, with stepped clocks where the kernel sleeps."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from csfabric.kernel import (
    HEARTBEAT_BUCKET,
    ActionLedger,
    ActionRefused,
    Lease,
    LeaseLost,
    OutcomeUnknownError,
    PermanentError,
    SteppedClock,
    TransientError,
    action_key,
    open_ledger,
)
from csfabric.kernel._heartbeat import Heartbeat
from csfabric.kernel.bus import Bus
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError

from tests.integration._workload import eventually

TTL = 15.0


async def test_kv_revisions_compare_and_set_delete_and_purge(bus: Bus) -> None:
    kv = await bus.key_value("shared_kv")
    first = await kv.create("a.b", b"1")
    with pytest.raises(KeyWrongLastSequenceError):
        await kv.create("a.b", b"again")
    second = await kv.update("a.b", b"2", last=first)
    assert second > first
    with pytest.raises(KeyWrongLastSequenceError):
        await kv.update("a.b", b"stale", last=first)
    entry = await kv.get("a.b")
    assert (entry.value, entry.revision) == (b"2", second)
    await kv.put("other", b"x")
    assert sorted(await kv.keys()) == ["a.b", "other"]

    await kv.delete("a.b", last=second)
    with pytest.raises(KeyNotFoundError):
        await kv.get("a.b")
    recreated = await kv.create("a.b", b"3")  # a deleted key can be created again
    assert recreated > second
    await kv.purge("a.b")
    with pytest.raises(KeyNotFoundError):
        await kv.get("a.b")
    assert await kv.keys() == ["other"]
    await kv.delete("other")
    with pytest.raises(NoKeysError):
        await kv.keys()
    status = await kv.status()
    assert status.history == 1


async def test_a_kv_watch_sends_the_current_values_then_a_marker_then_changes(bus: Bus) -> None:
    kv = await bus.key_value("watched")
    await kv.put("x", b"old")
    await kv.put("x", b"current")
    await kv.put("y", b"1")
    watch = await kv.watchall()
    seen: list[Any] = []
    async for entry in watch:
        seen.append(entry and (entry.key, entry.value, entry.operation))
        if entry is None:
            break
    assert seen == [("x", b"current", None), ("y", b"1", None), None]
    await kv.delete("y")
    await kv.put("z", b"new")
    later = [await watch.updates(timeout=5) for _ in range(2)]
    await watch.stop()
    assert [(e.key, e.operation) for e in later] == [("y", "DEL"), ("z", None)]
    assert later[1].revision == 5


async def test_an_empty_bucket_watch_starts_with_the_marker(bus: Bus) -> None:
    kv = await bus.key_value("empty")
    watch = await kv.watchall()
    assert await watch.updates(timeout=5) is None
    await watch.stop()


async def test_kv_ttl_expires_keys(bus: Bus) -> None:
    kv = await bus.key_value("short_lived", ttl=1.0)
    await kv.put("k", b"v")
    assert (await kv.get("k")).value == b"v"

    async def gone() -> bool:
        try:
            await kv.get("k")
        except KeyNotFoundError:
            return True
        return False

    await eventually(gone, within=10, what="the key expired")


async def test_lease_token_is_the_take_revision_and_a_successor_waits_the_ttl(bus: Bus) -> None:
    kv = await bus.key_value("csfabric_leases")
    clock = SteppedClock()
    a = Lease(kv, "term", ttl=TTL, holder="a", clock=clock)
    b = Lease(kv, "term", ttl=TTL, holder="b", clock=clock)
    assert await a.acquire()
    first = a.token
    assert first == (await kv.get("term")).revision
    assert await a.fence() == first
    assert not await b.acquire()  # held: b starts counting

    await clock.advance(5)
    assert await a.renew()
    assert (await kv.get("term")).revision > (first or 0)
    assert a.token == first
    assert not await b.acquire()  # a new revision: b counts again

    await clock.advance(TTL * 2 / 3)  # a stops renewing (it stalled); its term is over
    with pytest.raises(LeaseLost):
        await a.fence()
    assert not await b.acquire()  # b saw this revision for less than a TTL
    await clock.advance(TTL / 3 + 0.1)
    assert await b.acquire()
    assert (b.token or 0) > (first or 0)
    with pytest.raises(LeaseLost):
        await a.fence()


async def test_the_fence_refuses_once_another_holder_wrote(bus: Bus) -> None:
    kv = await bus.key_value("csfabric_leases")
    a = Lease(kv, "stolen", ttl=TTL, holder="a", clock=SteppedClock())
    assert await a.acquire()
    entry = await kv.get("stolen")
    await kv.update("stolen", b'{"holder": "operator"}', last=entry.revision)
    with pytest.raises(LeaseLost, match="operator"):
        await a.fence()
    await a.release()
    assert json.loads((await kv.get("stolen")).value or b"") == {"holder": "operator"}


async def test_a_released_lease_is_taken_at_once(bus: Bus) -> None:
    kv = await bus.key_value("csfabric_leases")
    clock = SteppedClock()
    a = Lease(kv, "handover", ttl=TTL, holder="a", clock=clock)
    b = Lease(kv, "handover", ttl=TTL, holder="b", clock=clock)
    assert await a.acquire()
    await a.release()
    assert await b.acquire()


async def test_ledger_intent_outcome_recorded_and_never_repeated(bus: Bus) -> None:
    ledger = await open_ledger(bus)
    calls: list[str] = []

    async def call() -> dict[str, Any]:
        calls.append("x")
        return {"jobid": "j-1"}

    key = action_key("event-1", "snapshot")
    first = await ledger.run(key, call)
    second = await ledger.run(key, call)
    assert (first.source, second.source) == ("call", "recorded")
    assert second.outcome == {"jobid": "j-1"}
    assert calls == ["x"]
    assert (await ledger.state(key) or {})["state"] == "done"


async def test_ledger_refusal_failure_and_unknown_outcome(bus: Bus) -> None:
    clock = SteppedClock()
    ledger = ActionLedger(await bus.key_value("csfabric_actions"), clock=clock, stale_after=60)

    async def refuse() -> None:
        raise PermanentError("protected")

    refused = action_key("e", "refused")
    with pytest.raises(PermanentError):
        await ledger.run(refused, refuse)
    with pytest.raises(ActionRefused):
        await ledger.run(refused, refuse)

    failing = action_key("e", "failed")
    outcomes = iter([TransientError("530"), None])

    async def flaky() -> str:
        error = next(outcomes)
        if error is not None:
            raise error
        return "ok"

    with pytest.raises(TransientError):
        await ledger.run(failing, flaky)
    assert (await ledger.run(failing, flaky)).executed  # nothing ran: called again

    unknown = action_key("e", "unknown")
    created: list[str] = []

    async def timed_out() -> None:
        created.append(unknown)
        raise OutcomeUnknownError("socket closed after sending")

    async def reconcile() -> str | None:
        return "found" if unknown in created else None

    with pytest.raises(OutcomeUnknownError):
        await ledger.run(unknown, timed_out, reconcile=reconcile)
    result = await ledger.run(unknown, timed_out, reconcile=reconcile)
    assert (result.source, result.outcome) == ("reconciled", "found")


async def test_ledger_intent_in_flight_is_retried_later_then_claimed_when_stale(bus: Bus) -> None:
    clock = SteppedClock()
    ledger = ActionLedger(await bus.key_value("csfabric_actions"), clock=clock, stale_after=60)
    key = action_key("event-3", "snapshot")
    await ledger.kv.create(key, b'{"state":"intent","at":"%s"}' % clock.now().isoformat().encode())

    async def nothing_found() -> None:
        return None

    async def call() -> str:
        return "done"

    with pytest.raises(TransientError, match="in flight"):
        await ledger.run(key, call, reconcile=nothing_found)
    await clock.advance(timedelta(seconds=61))
    result = await ledger.run(key, call, reconcile=nothing_found)
    assert (result.executed, result.outcome) == (True, "done")


async def test_a_heartbeat_is_listed_while_running_and_gone_after_stop(bus: Bus) -> None:
    beat = Heartbeat(bus, "shared-svc", instance="one")
    await beat.start()
    kv = await bus.key_value(HEARTBEAT_BUCKET)
    value = json.loads((await kv.get("shared-svc.one")).value or b"")
    assert (value["service"], value["instance"]) == ("shared-svc", "one")
    await beat.stop()
    with pytest.raises(KeyNotFoundError):
        await kv.get("shared-svc.one")
