"""A policy's blast radius holds for the whole policy: across replicas and restarts.

Each "replica" is a gate on its own NATS connection with its own policy watcher, as two
processes of a service would be; a "restart" is a new connection, watcher and gate on the
same nats-server.  All share one stepped kernel clock, so the window can be passed
without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import SteppedClock
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import ActionGate, GateDecision, PolicyStore, PolicyWatcher
from csfabric.kernel.policy._model import parse_document
from nats.js.errors import KeyNotFoundError

from tests.policykinds import TEST_KIND, register_test_kinds

pytestmark = pytest.mark.integration

OPERATOR = "test:oncall"
BUDGET = {"max": 3, "per": "1h"}
BLAST_BUCKET = "csfabric_blast"  # kernel.blast.BLAST_BUCKET


@dataclass
class Replica:
    bus: Bus
    watcher: PolicyWatcher
    gate: ActionGate

    async def close(self) -> None:
        await self.watcher.stop()
        await self.bus.close()


async def replica(server: NatsServerProcess, clock: SteppedClock, name: str) -> Replica:
    bus = await Bus.connect(server.url, service=name, clock=clock, create_streams=False)
    watcher = PolicyWatcher(bus)
    await watcher.start()
    return Replica(bus, watcher, ActionGate(watcher))


async def apply(server: NatsServerProcess, name: str, spec: dict[str, object]) -> None:
    register_test_kinds()
    bus = await Bus.connect(server.url, service="cli")
    document = {
        "apiVersion": "csfabric/v1",
        "kind": TEST_KIND,
        "metadata": {"name": name},
        "spec": {"action": "delete", **spec},
    }
    try:
        await PolicyStore(bus).apply([parse_document(document)], OPERATOR)
    finally:
        await bus.close()


@pytest_asyncio.fixture
async def clock() -> AsyncIterator[SteppedClock]:
    yield SteppedClock()


async def test_two_replicas_share_one_budget_and_a_restart_keeps_it(
    nats_server: NatsServerProcess, clock: SteppedClock
) -> None:
    await apply(nats_server, "purge", {"blastRadius": BUDGET})
    first = await replica(nats_server, clock, "purger")
    second = await replica(nats_server, clock, "purger")
    try:
        gates = [first.gate, second.gate] * 10
        decisions = await asyncio.gather(*(g.check(TEST_KIND, "purge") for g in gates))
        allowed = [d for d in decisions if d.allowed]
        assert len(allowed) == 3, [d.reason for d in decisions]
        refused = [d for d in decisions if not d.allowed]
        assert {d.outcome for d in refused} == {"blast-radius"}
        assert all("3 actions in the last 1h (max 3)" in d.reason for d in refused)
    finally:
        await first.close()
        await second.close()

    restarted = await replica(nats_server, clock, "purger")
    try:
        after_restart = await restarted.gate.check(TEST_KIND, "purge")
        assert (after_restart.allowed, after_restart.outcome) == (False, "blast-radius")
        # The window slides on the kernel clock: an hour later the budget is back, once.
        await clock.advance(3600)
        later = [await restarted.gate.check(TEST_KIND, "purge") for _ in range(4)]
        assert [d.allowed for d in later] == [True, True, True, False]
    finally:
        await restarted.close()


async def test_a_dry_run_spends_no_budget(
    nats_server: NatsServerProcess, clock: SteppedClock
) -> None:
    await apply(nats_server, "rehearse", {"blastRadius": BUDGET, "dryRun": True})
    one = await replica(nats_server, clock, "rehearser")
    try:
        decisions = [await one.gate.check(TEST_KIND, "rehearse") for _ in range(5)]
        assert {d.outcome for d in decisions} == {"dry-run"}
        kv = await one.bus.key_value(BLAST_BUCKET)
        with pytest.raises(KeyNotFoundError):
            await kv.get(f"{TEST_KIND}.rehearse")
    finally:
        await one.close()


async def test_with_nats_away_an_action_under_a_blast_radius_is_refused(
    nats_server: NatsServerProcess, clock: SteppedClock
) -> None:
    await apply(nats_server, "guarded", {"blastRadius": BUDGET})
    await apply(nats_server, "free", {})
    one = await replica(nats_server, clock, "guard")
    try:
        assert (await one.gate.check(TEST_KIND, "guarded")).allowed
        await nats_server.stop()
        refused: GateDecision = await one.gate.check(TEST_KIND, "guarded")
        assert (refused.allowed, refused.outcome) == (False, "blast-radius")
        assert refused.reason.startswith("blast-radius state unavailable")
        # A policy without a blast radius needs no shared state, so it still acts.
        assert (await one.gate.check(TEST_KIND, "free")).allowed
    finally:
        await one.close()
