"""Ingest's ``listEvents`` poller against the in-process simulator and a real nats-server:
rows published once, the watermark advancing, no republishing after a restart (seen-set),
and rows that came by webhook skipped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import Simulator, World
from csfabric.cloudstack.simulator._feeds import EventSink, WebhookSink
from csfabric.ingest.app import Ingest
from csfabric.ingest.feeds.poller import STATE_BUCKET, WATERMARK_KEY
from csfabric.ingest.logic import row_time
from csfabric.kernel import CloudEvent, RealClock, parse_event
from nats.js import JetStreamContext

from tests.integration.test_ingest_webhook import (
    SECRET,
    ingest_settings,
    jetstream,
    running_ingest,
)
from tests.servers import NatsServerProcess, free_port

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def webhook_port() -> int:
    return free_port()


@pytest_asyncio.fixture
async def simulator(webhook_port: int) -> AsyncIterator[Simulator]:
    sink = WebhookSink(f"http://127.0.0.1:{webhook_port}/webhook", SECRET, attempts=1)
    sinks: list[EventSink] = [sink]
    sim = Simulator(World.demo(5), clock=RealClock(), sinks=sinks, job_latency=0.02)
    await sim.start("127.0.0.1", free_port())
    try:
        yield sim
    finally:
        await sim.stop()
        await sink.close()


def cloudstack_for(sim: Simulator) -> CloudStackSettings:
    keys = sim.keys()["admin"]
    return CloudStackSettings(
        endpoint=sim.url,
        key=keys["apikey"],
        secret=keys["secretkey"],
        poll_interval=0.02,
        rate_limit_per_second=None,
    )


async def deploy(sim: Simulator) -> str:
    world = sim.world
    async with CloudStackClient(cloudstack_for(sim), clock=sim.clock) as client:
        job = await client.job(
            "deployVirtualMachine", zoneid=world.zone_named("zone-london").id,
            serviceofferingid=world.service_offering_id, templateid=world.template_id,
        )  # fmt: skip
    assert job.ok, job.error
    assert job.resource_id is not None
    return job.resource_id


async def rows(sim: Simulator) -> list[dict[str, Any]]:
    async with CloudStackClient(cloudstack_for(sim), clock=sim.clock) as client:
        return await client.list("listEvents", listall="true")


async def stored(js: JetStreamContext) -> list[CloudEvent]:
    info = await js.stream_info("CSFABRIC_EVENTS")
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        events.append(parse_event((await js.get_msg("CSFABRIC_EVENTS", seq)).data))
    return events


async def polls(ingest: Ingest, at_least: int) -> None:
    assert ingest.poller is not None
    async with asyncio.timeout(20):
        while ingest.poller.polls < at_least:
            await asyncio.sleep(0.05)


def poll_settings(tmp_path: Path, port: int, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "webhook_port": port,
        "poll_interval": 0.2,
        "poll_settle": 0,
        "poll_overlap": 5,
        "lease_ttl": 3,
        **overrides,
    }
    return ingest_settings(tmp_path, **values)


async def test_rows_published_once_watermark_advances_restart_does_not_republish(
    nats_server: NatsServerProcess, simulator: Simulator, webhook_port: int, tmp_path: Path
) -> None:
    vm = await deploy(simulator)  # no receiver yet: the webhook deliveries fail, rows remain
    listed = await rows(simulator)
    newest = max(t for r in listed if (t := row_time(r)) is not None)
    settings = poll_settings(tmp_path, webhook_port)
    cloudstack = cloudstack_for(simulator)
    async with jetstream(nats_server.url) as js:
        async with running_ingest(nats_server.url, tmp_path, settings, cloudstack) as (_, ingest):
            await polls(ingest, 3)
            first = await stored(js)
            assert ingest.poller is not None
            assert await ingest.poller.watermark() == newest
        assert sorted(e.extensions["cseventid"] for e in first) == sorted(r["id"] for r in listed)
        assert all(e.type == f"cloudstack.action.{e.data['event']}" for e in first)
        assert {e.subject for e in first if e.type == "cloudstack.action.VM.CREATE"} == {vm}

        # A restart that lost even the watermark re-reads the whole horizon: the seen-set
        # keeps every row from being published again.
        await (await js.key_value(STATE_BUCKET)).delete(WATERMARK_KEY)
        async with running_ingest(nats_server.url, tmp_path, settings, cloudstack) as (_, again):
            await polls(again, 3)
            assert again.poller is not None
            assert await again.poller.watermark() == newest
        assert len(await stored(js)) == len(first)

        # New rows after the restart: only they are added, and the watermark follows.
        async with running_ingest(nats_server.url, tmp_path, settings, cloudstack) as (_, third):
            await polls(third, 1)
            await deploy(simulator)
            before = third.poller.polls if third.poller else 0
            await polls(third, before + 3)
            assert third.poller is not None
            latest = max(t for r in await rows(simulator) if (t := row_time(r)) is not None)
            assert await third.poller.watermark() == latest
        assert len(await stored(js)) == len(await rows(simulator))


async def test_rows_that_came_by_webhook_are_skipped(
    nats_server: NatsServerProcess, simulator: Simulator, webhook_port: int, tmp_path: Path
) -> None:
    # Rows wait 2 s before the poller takes them, so the webhook is first, as in real life.
    settings = poll_settings(tmp_path, webhook_port, poll_settle=2)
    cloudstack = cloudstack_for(simulator)
    async with (
        jetstream(nats_server.url) as js,
        running_ingest(nats_server.url, tmp_path, settings, cloudstack) as (_, ingest),
    ):
        before = {r["id"] for r in await rows(simulator)}
        vm = await deploy(simulator)
        await asyncio.sleep(2.5)
        assert ingest.poller is not None
        await polls(ingest, ingest.poller.polls + 3)
        events = await stored(js)
        listed = await rows(simulator)
    new_rows = {r["id"] for r in listed} - before
    ours = [e for e in events if e.extensions.get("cseventid") in new_rows]
    # One event per new row, each the pushed body (webhook ids), none from listEvents.
    assert sorted(e.extensions["cseventid"] for e in ours) == sorted(new_rows)
    assert all("eventDateTime" in e.data["native"] for e in ours)
    assert all("created" not in e.data["native"] for e in ours)
    assert len(events) == len(listed)
    assert any(e.subject == vm for e in ours)
