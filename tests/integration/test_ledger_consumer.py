"""A CloudStack action behind a real consumer, with the shipped defaults, fails and recovers.

The handler takes a snapshot through ``CloudStackClient.job`` inside ``ActionLedger.run``,
tagging it ``csfabric:key`` and reconciling by that tag, the way services do.  It runs on a
real nats-server under a real :class:`Consumer` with default :class:`ConsumerOptions`, a
default ledger and default client retries, against the simulator over a socket.  Time is
scaled (10x) so the defaults' seconds pass quickly; every delay, deadline and backoff runs
on that one clock, so their proportions are the shipped ones.

* CloudStack answers 530 for longer than the client's own retries: the first delivery
  fails; the next one calls again at once and the snapshot is taken exactly once.
* CloudStack takes longer than the request timeout to answer ``createSnapshot``: the client
  does not re-send it, the ledger records the outcome as unknown, and a later delivery finds
  the snapshot by its tag.  One request, one snapshot.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import FaultPlan, Simulator, World
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import (
    ActionLedger,
    CloudEvent,
    ScaledClock,
    action_key,
    make_event,
    open_ledger,
)
from csfabric.kernel.bus import Bus, Consumer, ConsumerOptions, Delivery

from tests.integration._workload import DLQ_STREAM, consumer_settled, eventually, stream_count
from tests.servers import free_port

pytestmark = pytest.mark.integration

FACTOR = 10.0
KEY_TAG = "csfabric:key"


class CountingFaults(FaultPlan):
    """The simulator's fault plan, counting every request per command it sees.

    ``fail_times`` ends a command's error fault after that many injected errors, so "530
    for longer than the client's retries, then healthy" is exact rather than a dice roll.
    """

    def __init__(self, clock: ScaledClock) -> None:
        super().__init__(clock, seed=1)
        self.requests: dict[str, int] = {}
        self.fail_times: dict[str, int] = {}

    async def before(self, command: str) -> None:
        self.requests[command] = self.requests.get(command, 0) + 1
        try:
            await super().before(command)
        finally:
            limit = self.fail_times.get(command)
            injected = sum(
                n for name, n in self.injected.items() if name.rpartition(":")[0] == command
            )
            if limit is not None and injected >= limit:
                self.clear(command)


@dataclass
class Rig:
    bus: Bus
    simulator: Simulator
    faults: CountingFaults
    client: CloudStackClient
    ledger: ActionLedger
    volume_id: str


@pytest_asyncio.fixture
async def world(nats_server: NatsServerProcess, tmp_path: Path) -> AsyncIterator[Rig]:
    clock = ScaledClock(datetime.now(UTC), FACTOR)
    faults = CountingFaults(clock)
    simulator = Simulator(World.demo(7), clock=clock, faults=faults, state_dir=tmp_path)
    await simulator.start("127.0.0.1", free_port())
    keys = simulator.keys()["csfabric"]
    # Shipped client settings, but a 1 s request timeout (wall time), so the "slower than
    # the timeout" case takes a second, not ten.  No retry budget is widened.
    settings = CloudStackSettings(
        endpoint=simulator.url, key=keys["apikey"], secret=keys["secretkey"], timeout=1.0
    )
    client = CloudStackClient(settings, clock=clock)
    bus = await Bus.connect(nats_server.url, service="snapper", clock=clock)
    try:
        ledger = await open_ledger(bus)
        volumes = await client.list_volumes(listall=True)
        yield Rig(bus, simulator, faults, client, ledger, volumes[0].id)
    finally:
        await bus.close()
        await client.close()
        await simulator.stop()


class Snapper:
    """A thin service handler: one snapshot per event, through the ledger."""

    def __init__(self, world: Rig) -> None:
        self.world = world
        self.results: list[str] = []
        self.failures: list[str] = []

    async def __call__(self, event: CloudEvent, delivery: Delivery) -> None:
        client = self.world.client
        key = action_key(event.id, "snapshot")
        volume = str(event.subject)

        async def take() -> dict[str, Any]:
            job = await client.job("createSnapshot", volumeid=volume, tags={KEY_TAG: key})
            return {"snapshot": job.raise_for_status().resource_id}

        async def find() -> dict[str, Any] | None:
            found = await client.list_snapshots(listall=True, tags={KEY_TAG: key})
            return {"snapshot": found[0].id} if found else None

        try:
            result = await self.world.ledger.run(key, take, reconcile=find)
        except Exception as exc:
            self.failures.append(f"delivery {delivery.deliveries}: {type(exc).__name__}: {exc}")
            raise
        self.results.append(result.source)


async def run_one_event(world: Rig, event_id: str) -> tuple[Snapper, Consumer[CloudEvent]]:
    handler = Snapper(world)
    consumer: Consumer[CloudEvent] = Consumer(
        world.bus, "csfabric.lifecycle.>", "snapper", handler, ConsumerOptions()
    )
    await consumer.start()
    try:
        event = make_event(
            type="snapshot.requested", source="/tests", id=event_id, subject=world.volume_id
        )
        await world.bus.publish_event(event)
        await eventually(
            lambda: handler.results or consumer.dead_lettered,
            within=30,
            what=lambda: f"neither done nor dead-lettered: {handler.failures}",
        )
        await eventually(
            lambda: consumer_settled(world.bus, "CSFABRIC_EVENTS", "snapper"),
            within=30,
            what="the consumer never settled",
        )
    finally:
        await consumer.stop()
    return handler, consumer


async def snapshots_of(world: Rig, event_id: str) -> list[str]:
    key = action_key(event_id, "snapshot")
    return [s.id for s in await world.client.list_snapshots(listall=True, tags={KEY_TAG: key})]


async def test_a_transient_failure_of_the_first_call_is_retried_and_done_once(
    world: Rig,
) -> None:
    # 530 on every try of the first call (the client's 1 + max_retries), then healthy.
    tries = 1 + world.client.settings.max_retries
    world.faults.set("createSnapshot", error_rate=1.0, errorcode=530)
    world.faults.fail_times["createSnapshot"] = tries

    handler, consumer = await run_one_event(world, "evt-530")

    assert consumer.dead_lettered == 0, handler.failures
    assert await stream_count(world.bus, DLQ_STREAM) == 0
    assert handler.results == ["call"], handler.failures
    assert len(handler.failures) == 1
    assert "530" in handler.failures[0]
    assert world.faults.injected == {"createSnapshot:530": tries}
    assert world.faults.requests["createSnapshot"] == tries + 1  # one more, which worked
    assert len(await snapshots_of(world, "evt-530")) == 1


async def test_a_mutating_call_that_timed_out_is_reconciled_not_resent(world: Rig) -> None:
    # CloudStack answers createSnapshot 1.3 s (wall) late, the client waits 1 s: the
    # request was sent and the snapshot will exist, but the client cannot know that.
    world.faults.set("createSnapshot", latency=1.3 * FACTOR)

    handler, consumer = await run_one_event(world, "evt-slow")

    assert len(await snapshots_of(world, "evt-slow")) == 1
    assert world.faults.requests["createSnapshot"] == 1
    assert consumer.dead_lettered == 0, handler.failures
    assert await stream_count(world.bus, DLQ_STREAM) == 0
    assert handler.results == ["reconciled"], handler.failures
    assert "outcome unknown" in handler.failures[0]


async def test_a_job_slower_than_ack_wait_is_neither_repeated_nor_dead_lettered(
    world: Rig,
) -> None:
    # The job takes 1.5 x ack_wait: the server may redeliver the event while the first
    # handler still polls.  A second handling gets the recorded outcome or finds the
    # snapshot by its tag; it never takes another.
    ack_wait = ConsumerOptions().ack_wait
    world.simulator.jobs.latency = 1.5 * ack_wait

    handler, consumer = await run_one_event(world, "evt-long-job")

    assert len(await snapshots_of(world, "evt-long-job")) == 1
    assert world.faults.requests["createSnapshot"] == 1
    assert consumer.dead_lettered == 0, handler.failures
    assert await stream_count(world.bus, DLQ_STREAM) == 0
    assert handler.failures == []
    assert handler.results.count("call") == 1, handler.results
    assert set(handler.results) <= {"call", "recorded", "reconciled"}


async def test_an_intent_left_by_a_crash_is_waited_out_not_dead_lettered(world: Rig) -> None:
    # A replica claimed the action 400 s ago and died before sending the call: its intent
    # is still there, nothing is tagged with the key.  The ledger must not call while the
    # intent could still be a live call (stale_after, 450 s), and the event must not be
    # dead-lettered meanwhile: waiting out someone else's call spends none of its attempts.
    key = action_key("evt-crashed", "snapshot")
    crashed_at = world.bus.clock.now().timestamp() - 400
    intent = {
        "state": "intent",
        "at": datetime.fromtimestamp(crashed_at, UTC).isoformat(),
        "token": "a-replica-that-died",
    }
    await world.ledger.kv.create(key, json.dumps(intent).encode())

    handler, consumer = await run_one_event(world, "evt-crashed")

    assert consumer.dead_lettered == 0, handler.failures
    assert await stream_count(world.bus, DLQ_STREAM) == 0
    assert handler.results == ["call"], handler.failures
    # It looked again every RECONCILE_EVERY (15 s) until the intent was stale, each time as
    # the same first attempt: none of the event's five attempts was spent on waiting.
    assert len(handler.failures) >= 2
    assert all(f.startswith("delivery 1: RetryLater") for f in handler.failures), handler.failures
    assert all("in flight" in f for f in handler.failures)
    assert world.faults.requests["createSnapshot"] == 1
    assert len(await snapshots_of(world, "evt-crashed")) == 1
