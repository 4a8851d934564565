"""The ``listEvents`` poller writes only under a current lease term: once another holder has
the ``ingest-poller`` lease, the old one neither polls to the end nor moves the watermark;
when the other holder goes silent for a TTL, the poller takes the lease back and catches up."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import pytest
from csfabric.cloudstack.simulator import Simulator
from csfabric.ingest.feeds.poller import LEASE_NAME
from csfabric.ingest.logic import row_time
from csfabric.kernel import LEASE_BUCKET as BUCKET

from tests.integration._workload import eventually
from tests.integration.test_ingest_poller import (
    cloudstack_for,
    deploy,
    poll_settings,
    polls,
    rows,
    simulator,
    webhook_port,
)
from tests.integration.test_ingest_webhook import jetstream, running_ingest
from tests.servers import NatsServerProcess

pytestmark = pytest.mark.integration

__all__ = ["simulator", "webhook_port"]  # fixtures, imported for pytest


async def newest_row(sim: Simulator) -> datetime:
    return max(t for r in await rows(sim) if (t := row_time(r)) is not None)


async def test_a_poller_that_lost_its_lease_stops_writing_the_watermark(
    nats_server: NatsServerProcess, simulator: Simulator, webhook_port: int, tmp_path: Path
) -> None:
    await deploy(simulator)
    settings = poll_settings(tmp_path, webhook_port)  # poll every 0.2 s, lease TTL 3 s
    cloudstack = cloudstack_for(simulator)
    async with (
        jetstream(nats_server.url) as js,
        running_ingest(nats_server.url, tmp_path, settings, cloudstack) as (_, ingest),
    ):
        poller = ingest.poller
        assert poller is not None
        await polls(ingest, 2)
        before = await newest_row(simulator)
        assert await poller.watermark() == before
        await asyncio.sleep(1.1)  # row times have whole seconds: the next rows are later

        # Another replica takes the lease (as after a stall of this one past its TTL).
        leases = await js.key_value(BUCKET)
        await leases.put(LEASE_NAME, json.dumps({"holder": "other-replica", "ttl": 3}).encode())
        done = poller.polls
        await deploy(simulator)  # new rows the old holder must leave to the new one
        after = await newest_row(simulator)
        assert after != before
        await asyncio.sleep(1.0)  # five poll intervals
        assert await poller.watermark() == before
        assert poller.polls <= done + 1  # at most the poll already past its fences

        # The other replica never renews: after a TTL by our clock the lease is ours again.
        async def caught_up() -> bool:
            return await poller.watermark() == after

        await eventually(caught_up, within=15, what="the poller took the lease back")
