"""A Kafka consumer-group member that commits only what its handler has finished.

Shared by the kernel's bridge in (:class:`~.inbound.KafkaToNats`, CloudEvents) and ingest's
CloudStack feed (native bodies): each fetched batch is handled partition by partition in
offset order (partitions concurrently), and offsets are committed only after that, so a
crash loses nothing and what is read twice the JetStream duplicate window drops.  When the
handler raises, the partition is sought back to that record, what succeeded before it is
committed, and the batch is retried after a capped exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

MAX_RETRY_PAUSE = 30.0

RecordHandler = Callable[[Any], Awaitable[None]]


def where(record: Any) -> str:
    return f"{record.topic}/{record.partition}@{record.offset}"


class CommitAfterHandling:
    """Runs ``handle(record)`` for every record of ``consumer``; start / stop / wait."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        handle: RecordHandler,
        *,
        name: str,
        max_records: int = 500,
        retry_pause: float = 1.0,
        stop_grace: float = 5.0,
    ) -> None:
        self.consumer = consumer
        self.handle = handle
        self.name = name
        self.max_records = max_records
        self.retry_pause = retry_pause
        self.stop_grace = stop_grace
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._running = False

    async def start(self) -> None:
        await self.consumer.start()
        self._running = True
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self, grace: float | None = None) -> None:
        """Finish the batch in hand (commit included) within ``grace`` s, then leave."""
        self._running = False
        if self._task is not None:
            # A fetch returns within 0.5 s; a retry pause may not, and cutting it (or a
            # batch) short is safe: nothing uncommitted is lost, only read again.
            await asyncio.wait({self._task}, timeout=self.stop_grace if grace is None else grace)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.consumer.stop()

    async def wait(self) -> None:
        """Until the loop ends; raises what ended it (give it to ``ctx.spawn`` to notice)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _loop(self) -> None:
        failures = 0
        while self._running:
            try:
                batch = await self.consumer.getmany(timeout_ms=500, max_records=self.max_records)
            except KafkaError as exc:
                # aiokafka reconnects by itself; fetching again is all there is to do.
                log.warning("kafka fetch failed (%r), retrying", exc)
                await asyncio.sleep(self.retry_pause)  # a broker's return: wall time
                continue
            if not batch:
                continue
            outcomes = await asyncio.gather(
                *(self._partition(tp, records) for tp, records in batch.items())
            )
            done = zip(batch, outcomes, strict=True)
            offsets = {tp: offset for tp, (offset, _) in done if offset is not None}
            if offsets:
                try:
                    await self.consumer.commit(offsets)
                except KafkaError as exc:
                    # A rebalance took the partitions: their next owner reads the records
                    # again, and Nats-Msg-Id makes that harmless.
                    log.warning("kafka commit failed (%r); records will be read again", exc)
            if any(failed for _, failed in outcomes):
                failures += 1
                self.failures += 1
                # Wall time, like the bus's own retries: it waits for NATS, not the fabric.
                await asyncio.sleep(min(MAX_RETRY_PAUSE, self.retry_pause * 2 ** (failures - 1)))
            else:
                failures = 0

    async def _partition(self, tp: Any, records: list[Any]) -> tuple[int | None, bool]:
        """Handle in order; returns (offset to commit or None, whether a record failed)."""
        done: int | None = None
        for record in records:
            try:
                await self.handle(record)
            except Exception as exc:
                # NATS is away (TransientError after the bus's retries) or worse: read this
                # record again on the next fetch, and keep what succeeded before it.
                log.warning("kafka record %s not handled (%r), will retry", where(record), exc)
                self.consumer.seek(tp, record.offset)
                return done, True
            done = record.offset + 1
        return done, False


__all__ = ["CommitAfterHandling", "RecordHandler", "where"]
