"""``csfabric run snapshots``: inventory, volume events, and the scheduler on the lease holder.

Every replica keeps the inventory (paged ``listVolumes`` at start, resynced every
``resync_interval``, volume and project events in between, shared through one durable
consumer).  Only the holder of the ``snapshots-scheduler`` lease schedules snapshots and
sweeps retention, and every call it makes is fenced by the lease.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.kernel import LEASE_BUCKET, Lease, get_logger, open_ledger
from csfabric.kernel.service import ServiceContext
from csfabric.snapshots.attempt import Attempts
from csfabric.snapshots.handlers import (
    PROJECT_EVENTS,
    VOLUME_EVENTS,
    Inventory,
    VolumeEvents,
    Zones,
)
from csfabric.snapshots.retention import Retention
from csfabric.snapshots.scheduler import Scheduler
from csfabric.snapshots.settings import SnapshotsSettings

log = get_logger(__name__)

LEASE_NAME = "snapshots-scheduler"


@dataclass
class Snapshots:
    """What :func:`start_snapshots` started (tests reach in; ``setup`` discards it)."""

    client: CloudStackClient
    inventory: Inventory
    attempts: Attempts
    scheduler: Scheduler
    retention: Retention
    lease: Lease


async def setup(ctx: ServiceContext) -> None:
    await start_snapshots(ctx, SnapshotsSettings())


async def start_snapshots(
    ctx: ServiceContext,
    settings: SnapshotsSettings,
    *,
    cloudstack: CloudStackSettings | None = None,
    session: aiohttp.ClientSession | None = None,
    holder: str | None = None,
) -> Snapshots:
    client = CloudStackClient(
        cloudstack or CloudStackSettings(), clock=ctx.clock, metrics=ctx.metrics, session=session
    )
    ctx.on_stop(client.close)
    zones = Zones(client)
    await zones.load()
    inventory = Inventory(client, ctx.clock)
    await inventory.resync()
    ctx.spawn(inventory.run_resync(settings.resync_interval), name="inventory-resync")
    events = VolumeEvents(inventory)
    await ctx.consume(VOLUME_EVENTS, "snapshots-volumes", events.volume)
    await ctx.consume(PROJECT_EVENTS, "snapshots-projects", events.project)
    ledger = await open_ledger(ctx.bus, ctx.settings)
    lease = Lease(
        await ctx.bus.key_value(LEASE_BUCKET),
        LEASE_NAME,
        ttl=settings.lease_ttl,
        clock=ctx.clock,
        holder=holder,
    )
    attempts = Attempts(ctx, settings, client, inventory, zones, ledger, lease)
    scheduler = Scheduler(attempts)
    retention = Retention(ctx, settings, client, zones, lease, scheduler, attempts)

    async def lead() -> None:
        # Not a TaskGroup: the lease must see the LeaseLost itself, not an ExceptionGroup.
        tasks = [asyncio.create_task(scheduler.run()), asyncio.create_task(retention.run())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    ctx.spawn(lease.run(lead), name="scheduler")
    log.info("snapshots started", extra={"volumes": len(inventory.volumes)})
    return Snapshots(client, inventory, attempts, scheduler, retention, lease)


__all__ = ["LEASE_NAME", "Snapshots", "setup", "start_snapshots"]
