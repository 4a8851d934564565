"""``csfabric run ingest``: wires the pipeline to every configured feed.

Always: the webhook receiver, and the stream watcher (ingest is the fabric's main publisher,
so it is where the fill of every contract stream is measured and a stream about to refuse
messages is alerted; see ``kernel.streamwatch``).  When ``poll_interval > 0`` and
CloudStack keys are known: the ``listEvents`` poller, on the lease holder only.  When
configured: the AMQP and Kafka feeds (imported only then, so their client libraries load
only when used).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.ingest.feeds.poller import LEASE_NAME, STATE_BUCKET, Poller
from csfabric.ingest.feeds.webhook import WebhookReceiver
from csfabric.ingest.handlers import SEEN_BUCKET, Pipeline, SeenSet
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel import LEASE_BUCKET, Lease, get_logger
from csfabric.kernel.bus import StreamWatch
from csfabric.kernel.service import ServiceContext

log = get_logger(__name__)

# The seen-set outlives the poll horizon by this much (real seconds), so a row at the edge
# of a window is still known when the window reads it.
_SEEN_MARGIN = 600.0


@dataclass
class Ingest:
    """What :func:`start_ingest` started (tests reach in; ``setup`` discards it)."""

    pipeline: Pipeline
    webhook: WebhookReceiver
    streams: StreamWatch
    poller: Poller | None = None
    feeds: list[Any] = field(default_factory=list)


async def setup(ctx: ServiceContext) -> None:
    await start_ingest(ctx, IngestSettings())


async def start_ingest(
    ctx: ServiceContext,
    settings: IngestSettings,
    *,
    cloudstack: CloudStackSettings | None = None,
) -> Ingest:
    polling = settings.poll_interval > 0
    replaying = bool(settings.kafka_bootstrap) and settings.kafka_offset_reset == "earliest"
    seen: SeenSet | None = None
    if polling or replaying:
        # Only the poller makes a pushed event and a row of the same event meet, and only a
        # Kafka group starting at "earliest" replays past the stream's Nats-Msg-Id window;
        # without either, that window is all the dedupe needed.
        ttl = ctx.clock.to_real(settings.poll_horizon) + _SEEN_MARGIN
        seen = SeenSet(await ctx.bus.key_value(SEEN_BUCKET, ttl=ttl))
    pipeline = Pipeline(ctx, settings, seen=seen)
    webhook = WebhookReceiver(ctx, pipeline, settings)
    await webhook.start()
    ctx.on_stop(webhook.stop)
    streams = StreamWatch(ctx.bus, ctx.metrics)
    ctx.spawn(streams.run(), name="stream-watch")
    ingest = Ingest(pipeline, webhook, streams)
    if polling:
        ingest.poller = await _start_poller(ctx, pipeline, settings, cloudstack)
    if settings.amqp_url:
        from csfabric.ingest.feeds.amqp import start_amqp

        amqp = await start_amqp(pipeline, settings)
        ctx.on_stop(amqp.stop)
        ingest.feeds.append(amqp)
    if settings.kafka_bootstrap:
        from csfabric.ingest.feeds.kafka import start_kafka

        kafka = await start_kafka(pipeline, settings)
        ctx.on_stop(kafka.stop)
        # A Kafka loop that dies of an unexpected error ends the service (and its
        # supervisor restarts it) rather than leaving it running without that feed.
        ctx.spawn(kafka.wait(), name="kafka")
        ingest.feeds.append(kafka)
    log.info(
        "ingest feeds started",
        extra={
            "webhook": webhook.url,
            "poller": ingest.poller is not None,
            "amqp": bool(settings.amqp_url),
            "kafka": bool(settings.kafka_bootstrap),
        },
    )
    return ingest


async def _start_poller(
    ctx: ServiceContext,
    pipeline: Pipeline,
    settings: IngestSettings,
    cloudstack: CloudStackSettings | None,
) -> Poller | None:
    cs_settings = cloudstack or CloudStackSettings()
    if cs_settings.key is None or cs_settings.secret is None:
        # Push feeds still work; refusing to start would take them down for a missing extra.
        log.warning("listEvents poller off: no CloudStack key/secret (CSFABRIC_CLOUDSTACK_*)")
        return None
    client = CloudStackClient(cs_settings, clock=ctx.clock, metrics=ctx.metrics)
    ctx.on_stop(client.close)
    lease = Lease(
        await ctx.bus.key_value(LEASE_BUCKET), LEASE_NAME, ttl=settings.lease_ttl, clock=ctx.clock
    )
    state = await ctx.bus.key_value(STATE_BUCKET)
    poller = Poller(ctx, pipeline, settings, client, state, lease=lease)
    ctx.spawn(lease.run(poller.run), name="poller")
    return poller


__all__ = ["Ingest", "setup", "start_ingest"]
