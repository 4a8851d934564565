"""``csfabric run replication``: the :class:`~csfabric.replication.handlers.Replicator` on
the holder of the ``replication`` lease.

Without CloudStack keys there is nothing to read or copy: the service starts, says so in
its heartbeat (``csfabric status``) and waits, rather than failing ``csfabric dev``.
"""

from __future__ import annotations

from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.events import ActionEventData, typed
from csfabric.kernel import LEASE_BUCKET, Lease, get_logger, open_ledger
from csfabric.kernel.service import ServiceContext
from csfabric.replication.handlers import LEASE_NAME, Replicator
from csfabric.replication.settings import ReplicationSettings
from csfabric.replication.state import BUCKET, DrState

log = get_logger(__name__)

COPY_EVENTS = "csfabric.cloudstack.action.SNAPSHOT.COPY"


async def setup(ctx: ServiceContext) -> None:
    await start_replication(ctx, ReplicationSettings())


async def start_replication(
    ctx: ServiceContext,
    settings: ReplicationSettings,
    *,
    cloudstack: CloudStackSettings | None = None,
    client: CloudStackClient | None = None,
) -> Replicator | None:
    if client is None:
        cs_settings = cloudstack or CloudStackSettings()
        if cs_settings.key is None or cs_settings.secret is None:
            why = "replication idle: no CloudStack key/secret (CSFABRIC_CLOUDSTACK_*)"
            log.warning(why)
            ctx.warnings.append(why)
            return None
        client = CloudStackClient(cs_settings, clock=ctx.clock, metrics=ctx.metrics)
        ctx.on_stop(client.close)
    lease = Lease(
        await ctx.bus.key_value(LEASE_BUCKET), LEASE_NAME, ttl=settings.lease_ttl, clock=ctx.clock
    )
    state = DrState(await ctx.bus.key_value(BUCKET))
    ledger = await open_ledger(ctx.bus, ctx.settings)
    replicator = Replicator(ctx, settings, client, state, ledger, lease=lease)
    # SNAPSHOT.COPY events time the copies exactly (polling alone bounds them by a sweep).
    await ctx.consume(
        COPY_EVENTS, "replication-copies", typed(ActionEventData)(replicator.on_copy_event)
    )
    ctx.spawn(lease.run(replicator.run), name="replicator")
    log.info("replication started", extra={"sweep_interval": settings.sweep_interval})
    return replicator


__all__ = ["setup", "start_replication"]
