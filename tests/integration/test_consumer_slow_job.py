"""A CloudStack job slower than ``ack_wait`` is neither repeated nor dead-lettered.

Two workers share one durable consumer, as two replicas of a service do.  The handler
deploys a VM through the idempotency ledger and the client, and the simulator's job takes
longer than ``ack_wait``.  Were the message not kept alive, the server would hand it to the
second worker while the first still waits for the job: the ledger would find the intent
"in flight" and that worker would spend its retries and dead-letter the event.

Shipped defaults throughout (consumer options, ledger ``stale_after``, client settings);
the kernel clock runs 20 times faster so that ack_wait (30 s) and the job (40 s) pass in
a few seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import FaultPlan, Simulator, World
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import LEDGER_BUCKET as BUCKET
from csfabric.kernel import ActionLedger, CloudEvent, ScaledClock, action_key, make_event
from csfabric.kernel.bus import Bus, Consumer, ConsumerOptions, Delivery

from tests.integration._workload import (
    DLQ_STREAM,
    EVENTS_STREAM,
    consumer_settled,
    eventually,
    stream_count,
)
from tests.servers import free_port

pytestmark = pytest.mark.integration

CLOCK = ScaledClock(datetime.now(UTC), 20.0)  # fabric time = wall time at import, then 20x
DEFAULTS = ConsumerOptions()
JOB_SECONDS = 40.0  # fabric seconds: longer than ack_wait, shorter than stale_after
DURABLE = "slowjob"


class CountingFaults(FaultPlan):
    """No faults; counts every command the simulator answers."""

    def __init__(self) -> None:
        super().__init__(CLOCK)
        self.calls: Counter[str] = Counter()

    async def before(self, command: str) -> None:
        self.calls[command] += 1
        await super().before(command)


@pytest_asyncio.fixture
async def simulator(tmp_path: Path) -> AsyncIterator[Simulator]:
    sim = Simulator(
        World.demo(7),
        clock=CLOCK,
        faults=CountingFaults(),
        job_latency=JOB_SECONDS,
        state_dir=tmp_path,
    )
    await sim.start("127.0.0.1", free_port())
    try:
        yield sim
    finally:
        await sim.stop()


async def test_a_job_slower_than_ack_wait_runs_once_and_is_acked(
    nats_server: NatsServerProcess, simulator: Simulator
) -> None:
    assert DEFAULTS.ack_wait < JOB_SECONDS
    keys = simulator.keys()["csfabric"]
    settings = CloudStackSettings(
        endpoint=simulator.url, key=keys["apikey"], secret=keys["secretkey"]
    )
    world = simulator.world
    seen: list[tuple[int, int]] = []
    results: list[Any] = []
    consumers: list[Consumer[CloudEvent]] = []
    buses: list[Bus] = []
    clients: list[CloudStackClient] = []

    def worker(number: int, ledger: ActionLedger, client: CloudStackClient) -> Any:
        async def handler(event: CloudEvent, delivery: Delivery) -> None:
            seen.append((number, delivery.deliveries))
            [zone] = await client.list_zones(name="zone-london")

            async def deploy() -> str | None:
                job = await client.job(
                    "deployVirtualMachine",
                    zoneid=zone.id,
                    serviceofferingid=world.service_offering_id,
                    templateid=world.template_id,
                    name="slow-job-vm",
                )
                return job.raise_for_status().resource_id

            results.append(await ledger.run(action_key(event.id, "deploy"), deploy))

        return handler

    try:
        for number in range(2):
            bus = await Bus.connect(nats_server.url, service="slowjob", clock=CLOCK)
            buses.append(bus)
            ledger = ActionLedger(await bus.key_value(BUCKET), clock=CLOCK)
            client = CloudStackClient(settings, clock=CLOCK)
            await client.__aenter__()
            clients.append(client)
            consumer: Consumer[CloudEvent] = Consumer(
                bus, "csfabric.lifecycle.>", DURABLE, worker(number, ledger, client), DEFAULTS
            )
            await consumer.start()
            consumers.append(consumer)
        event = make_event(
            id="deploy-1", type="environment.requested", source="/tests/slowjob", subject="env-1"
        )
        await buses[0].publish_event(event)

        await eventually(
            lambda: sum(c.handled + c.dead_lettered for c in consumers) >= 1,
            within=20,
            what=lambda: f"the event settled; seen {seen}, calls {dict(faults(simulator).calls)}",
        )
        await eventually(
            lambda: consumer_settled(buses[0], EVENTS_STREAM, DURABLE),
            within=10,
            what="consumer settled",
        )
        info = await buses[0].js.consumer_info(EVENTS_STREAM, DURABLE)
        dead = await stream_count(buses[0], DLQ_STREAM)
    finally:
        for consumer in consumers:
            await consumer.stop()
        for client in clients:
            await client.__aexit__(None, None, None)
        for bus in buses:
            await bus.close()

    assert faults(simulator).calls["deployVirtualMachine"] == 1
    assert len(seen) == 1, seen  # one handler call: no redelivery to either worker
    assert info.delivered.consumer_seq == 1
    assert dead == 0
    assert sum(c.handled for c in consumers) == 1
    [result] = results
    assert result.executed
    assert result.outcome is not None


def faults(simulator: Simulator) -> CountingFaults:
    assert isinstance(simulator.faults, CountingFaults)
    return simulator.faults
