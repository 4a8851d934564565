"""CloudStack's Kafka feed: consumer group, commit only after every record was stored.

CloudStack's Kafka plugin sends the bare event body (key: the resource uuid, or null).  Each
fetched batch goes through :meth:`Pipeline.ingest` in offset order per key (the resource
uuid; keys and partitions concurrently), and the offsets are committed only after that —
the kernel's :class:`~csfabric.kernel.kafka.CommitAfterHandling`, which its Kafka bridge
uses too (for CloudEvents; these are CloudStack's native bodies).  A body that cannot be
parsed is dead-lettered by the pipeline at once; a record whose handling fails otherwise is
retried ``kafka_max_attempts`` times and then dead-lettered, while "NATS is away" only
pauses the feed (back-pressure) and never uses up a record's attempts.  aiokafka directly, not
FastStream's KafkaBroker: per-batch manual commits and seeks are the whole point here.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer

from csfabric.cloudstack import NativeMessage
from csfabric.ingest.handlers import Pipeline
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel.kafka import CommitAfterHandling

__all__ = ["KafkaFeed", "start_kafka"]

log = logging.getLogger(__name__)

DEFAULT_SESSION_TIMEOUT_MS = 10_000


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
        self.stored = 0  # handled: stored, duplicate or dead-lettered by the pipeline
        self.dead_lettered = 0  # given up on after the group's attempts
        self._group: CommitAfterHandling | None = None

    @property
    def failures(self) -> int:
        return self._group.failures if self._group is not None else 0

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
            # A new group starts at the end ("latest"): replaying the whole topic would go
            # far past the stream's duplicate window, and the listEvents poller is the
            # catch-up path.  "earliest" is an explicit choice (settings).
            auto_offset_reset=self.settings.kafka_offset_reset,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(100, self.session_timeout_ms // 3),
            max_poll_records=self.max_records,
        )
        self._group = CommitAfterHandling(
            consumer,
            self._ingest,
            name="ingest:kafka",
            dead_letter=self._dead_letter,
            max_attempts=self.settings.kafka_max_attempts,
            max_records=self.max_records,
            retry_pause=self.retry_pause,
            stop_grace=self.stop_grace,
        )
        await self._group.start()

    async def stop(self, grace: float | None = None) -> None:
        """Finish the batch in hand (commit included) within ``grace`` s, then leave."""
        if self._group is not None:
            await self._group.stop(grace)
            self._group = None

    async def wait(self) -> None:
        """Until the feed ends; raises what ended it (give it to ``ctx.spawn`` to notice)."""
        if self._group is not None:
            await self._group.wait()

    async def _ingest(self, record: Any) -> None:
        await self.pipeline.ingest(self._message(record))
        self.stored += 1

    async def _dead_letter(self, record: Any, error: BaseException, attempts: int) -> None:
        """The group gave up on ``record``: its dead letter (raises if not stored)."""
        await self.pipeline.dead_letter(self._message(record), error, attempts)
        self.dead_lettered += 1

    @staticmethod
    def _message(record: Any) -> NativeMessage:
        return NativeMessage(record.value or b"", "kafka", kafka_key=record.key)


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
