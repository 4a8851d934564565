"""CloudStack's Kafka feed: consumer group, commit only after every record was stored.

CloudStack's Kafka plugin sends the bare event body (key: the resource uuid, or null).  Each
fetched batch goes through :meth:`Pipeline.ingest` partition by partition, in offset order
(partitions concurrently), and the offsets are committed only after that: a crash loses
nothing, and what is read twice the JetStream duplicate window drops (the event id is the
``Nats-Msg-Id``).  When a record fails (NATS away) the partition is sought back to it and
the batch retried with a capped exponential backoff; what succeeded before it is committed.
Same shape as the kernel's :class:`~csfabric.kernel.kafka.KafkaToNats`, whose records are
CloudEvents, whereas these are CloudStack's native bodies.  aiokafka directly, not
FastStream's KafkaBroker: per-batch manual commits and seeks are the whole point here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from csfabric.cloudstack.parse import NativeMessage

from .pipeline import Pipeline
from .settings import IngestSettings

__all__ = ["KafkaFeed", "start_kafka"]

log = logging.getLogger(__name__)

DEFAULT_SESSION_TIMEOUT_MS = 10_000
MAX_RETRY_PAUSE = 30.0


class KafkaFeed:
    """One member of ``settings.kafka_group`` on ``settings.kafka_topic``."""

    def __init__(
        self,
        pipeline: Pipeline,
        settings: IngestSettings,
        *,
        session_timeout_ms: int | None = None,
        max_records: int = 500,
        retry_pause: float = 1.0,
        stop_grace: float = 5.0,
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings
        # Tansu (and real Kafka) only rebalance after a departed member's session expires,
        # so tests want a short session; settings may grow the field later.
        configured = getattr(settings, "kafka_session_timeout_ms", None)
        self.session_timeout_ms = int(
            session_timeout_ms or configured or DEFAULT_SESSION_TIMEOUT_MS
        )
        self.max_records = max_records
        self.retry_pause = retry_pause
        self.stop_grace = stop_grace
        self.stored = 0
        self.failures = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False

    async def start(self) -> None:
        bootstrap = self.settings.kafka_bootstrap
        if not bootstrap:
            raise ValueError("Kafka feed needs settings.kafka_bootstrap")
        consumer = AIOKafkaConsumer(
            self.settings.kafka_topic,
            bootstrap_servers=bootstrap,
            group_id=self.settings.kafka_group,
            client_id="csfabric-ingest",
            enable_auto_commit=False,
            # A new group starts at the beginning: events CloudStack sent before the
            # first start are still events to ingest.
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(100, self.session_timeout_ms // 3),
            max_poll_records=self.max_records,
        )
        await consumer.start()
        self._consumer = consumer
        self._running = True
        self._task = asyncio.create_task(self._loop(), name="ingest:kafka")

    async def stop(self, grace: float | None = None) -> None:
        """Finish the batch in hand (commit included) within ``grace`` s, then leave."""
        self._running = False
        if self._task is not None:
            # Cutting a batch short is safe: nothing uncommitted is lost, only read again.
            await asyncio.wait({self._task}, timeout=self.stop_grace if grace is None else grace)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def wait(self) -> None:
        """Until the feed ends; raises what ended it (give it to ``ctx.spawn`` to notice)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        failures = 0
        while self._running:
            try:
                batch = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
            except KafkaError as exc:
                # aiokafka reconnects by itself; fetching again is all there is to do.
                log.warning("kafka fetch failed (%r), retrying", exc)
                await asyncio.sleep(self.retry_pause)
                continue
            if not batch:
                continue
            outcomes = await asyncio.gather(
                *(self._partition(consumer, tp, records) for tp, records in batch.items())
            )
            offsets = {
                tp: offset
                for tp, (offset, _) in zip(batch, outcomes, strict=True)
                if offset is not None
            }
            if offsets:
                try:
                    await consumer.commit(offsets)
                except KafkaError as exc:
                    # A rebalance took the partitions: their next owner reads the records
                    # again, and the duplicate window makes that harmless.
                    log.warning("kafka commit failed (%r); records will be read again", exc)
            if any(failed for _, failed in outcomes):
                failures += 1
                self.failures += 1
                # Wall time, like the bus's own retries: it waits for NATS, not the fabric.
                await asyncio.sleep(min(MAX_RETRY_PAUSE, self.retry_pause * 2 ** (failures - 1)))
            else:
                failures = 0

    async def _partition(
        self, consumer: AIOKafkaConsumer, tp: Any, records: list[Any]
    ) -> tuple[int | None, bool]:
        """Ingest in order; returns (offset to commit or None, whether a record failed)."""
        done: int | None = None
        for record in records:
            msg = NativeMessage(record.value or b"", "kafka", kafka_key=record.key)
            try:
                await self.pipeline.ingest(msg)
            except Exception as exc:
                # Read this record again on the next fetch; keep what succeeded before it.
                where = f"{record.topic}/{record.partition}@{record.offset}"
                log.warning("kafka record %s not stored (%r), will retry", where, exc)
                consumer.seek(tp, record.offset)
                return done, True
            self.stored += 1
            done = record.offset + 1
        return done, False


async def start_kafka(
    pipeline: Pipeline,
    settings: IngestSettings,
    *,
    session_timeout_ms: int | None = None,
    retry_pause: float = 1.0,
) -> KafkaFeed:
    """Join the group and start ingesting; the returned feed's ``stop()`` ends it."""
    feed = KafkaFeed(
        pipeline,
        settings,
        session_timeout_ms=session_timeout_ms,
        retry_pause=retry_pause,
    )
    await feed.start()
    return feed
