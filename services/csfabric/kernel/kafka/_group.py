"""A Kafka consumer-group member that commits only what its handler has finished.

Shared by the kernel's bridge in (:class:`~._inbound.KafkaToNats`, CloudEvents) and ingest's
CloudStack feed (native bodies): in each fetched batch the records of one key (one
resource) are handled in offset order, the keys of a partition and the partitions
concurrently — so the JetStream publishes of a partition are in flight together, not one
pub-ack at a time — and offsets are committed only after that, up to the first record not
done, so a crash loses nothing and what is read twice the JetStream duplicate window drops.
Records without a key are one chain, in offset order.

When the handler raises, the rest of that key's records wait, the partition is sought back
to the first record not done, what was done before it is committed, and the batch is
fetched again after a capped exponential backoff.  Records of other keys already done
behind it are remembered and not handled again when they are read again.  What
happens to the record then depends on the error (Spring Kafka's ``DefaultErrorHandler`` with
a dead-letter recoverer):

* :class:`TransientError` — NATS is away after the bus's own retries.  Not the record's
  fault: it is retried for as long as that lasts (back-pressure), never dropped, and those
  failures do not count against it.
* :class:`PermanentError` — retrying cannot help: the record goes to ``dead_letter`` at once.
* anything else (a handler bug, an unclassified library error) — retried until it failed
  ``max_attempts`` times in all, then handed to ``dead_letter``.

A record is committed past only once it was handled or its dead letter was stored: when
``dead_letter`` raises, the record stays, and is tried again later.  No exception from
``getmany``, ``commit`` or ``seek`` ends the loop; only :meth:`stop` (or cancelling) does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from csfabric.kernel._logs import get_logger
from csfabric.kernel.bus import FEED_RETRY_CAP, MAX_DELIVER
from csfabric.kernel.errors import PermanentError, TransientError

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "CommitAfterHandling",
    "DeadLetterHandler",
    "RecordHandler",
    "where",
]

log = get_logger(__name__)

MAX_RETRY_PAUSE = FEED_RETRY_CAP
DEFAULT_MAX_ATTEMPTS = MAX_DELIVER  # attempts of a record, the first included

RecordHandler = Callable[[Any], Awaitable[None]]
# (record, the error that condemned it, attempts made) → returns once the letter is stored.
DeadLetterHandler = Callable[[Any, BaseException, int], Awaitable[None]]


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
        dead_letter: DeadLetterHandler,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_records: int = 500,
        retry_pause: float = 1.0,
        max_retry_pause: float = MAX_RETRY_PAUSE,
        stop_grace: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.consumer = consumer
        self.handle = handle
        self.dead_letter = dead_letter
        self.name = name
        self.max_attempts = max_attempts
        self.max_records = max_records
        self.retry_pause = retry_pause
        self.max_retry_pause = max_retry_pause
        self.stop_grace = stop_grace
        self.failures = 0  # handler or dead-letter failures, all kinds
        self.dead_lettered = 0
        # Failed attempts of the records a partition is stuck on: (topic, partition, offset).
        self._attempts: dict[tuple[str, int, int], int] = {}
        self._errors: dict[tuple[str, int, int], BaseException] = {}
        # Done, but behind a record not done, so not committed: skipped when read again.
        self._ahead: set[tuple[str, int, int]] = set()
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
                failed = await self._one_batch()
            except Exception as exc:
                # getmany/commit of a consumer between states, or a bug here: nothing was
                # committed past an unhandled record, so fetching again loses nothing.
                log.warning("kafka group %s: %r; fetching again", self.name, exc)
                failed = True
            if failed:
                failures += 1
                self.failures += 1
                # Wall time, like the bus's own retries: it waits for NATS, not the fabric.
                pause = self.retry_pause * 2 ** min(failures - 1, 16)
                await asyncio.sleep(min(self.max_retry_pause, pause))
            else:
                failures = 0

    async def _one_batch(self) -> bool:
        """Fetch, handle and commit one batch; True when a partition is stuck on a record."""
        # aiokafka reconnects by itself; fetching again is all there is to do on an error.
        batch = await self.consumer.getmany(timeout_ms=500, max_records=self.max_records)
        if not batch:
            return False
        outcomes = await asyncio.gather(
            *(self._partition(tp, records) for tp, records in batch.items())
        )
        done = zip(batch, outcomes, strict=True)
        offsets = {tp: offset for tp, (offset, _) in done if offset is not None}
        if offsets:
            try:
                await self.consumer.commit(offsets)
            except Exception as exc:
                # A rebalance took the partitions: their next owner reads the records
                # again, and Nats-Msg-Id makes that harmless.
                log.warning("kafka commit failed (%r); records will be read again", exc)
        return any(failed for _, failed in outcomes)

    async def _partition(self, tp: Any, records: list[Any]) -> tuple[int | None, bool]:
        """Handle per key in order; returns (offset to commit or None, whether one is stuck)."""
        chains: dict[Any, list[Any]] = {}
        for record in records:
            chains.setdefault(record.key, []).append(record)
        done_at: set[int] = set()  # offsets handled (or dead-lettered)

        async def chain(keyed: list[Any]) -> None:
            for record in keyed:
                ident = (record.topic, record.partition, record.offset)
                if ident not in self._ahead and not await self._record(record):
                    return  # the key's later records wait behind it: per-resource order
                done_at.add(record.offset)

        if len(chains) == 1:
            await chain(records)
        else:
            await asyncio.gather(*(chain(keyed) for keyed in chains.values()))
        done: int | None = None
        for index, record in enumerate(records):
            if record.offset not in done_at:
                try:
                    self.consumer.seek(tp, record.offset)
                except Exception as exc:  # the partition was revoked meanwhile
                    log.info("kafka seek %s not done (%r)", where(record), exc)
                for later in records[index + 1 :]:
                    if later.offset in done_at:
                        self._ahead.add((later.topic, later.partition, later.offset))
                self._forget_ahead(records[:index])
                return done, True
            done = record.offset + 1
        self._forget_ahead(records)
        return done, False

    def _forget_ahead(self, committed: list[Any]) -> None:
        if self._ahead:
            self._ahead.difference_update((r.topic, r.partition, r.offset) for r in committed)

    async def _record(self, record: Any) -> bool:
        """True once the record is handled or dead-lettered; False: read it again later."""
        key = (record.topic, record.partition, record.offset)
        attempts = self._attempts.get(key, 0)
        if attempts < self.max_attempts:
            try:
                await self.handle(record)
            except TransientError as exc:
                # Back-pressure: the bus is away, the record is fine; its budget is kept.
                log.warning("kafka record %s waits for the bus (%s)", where(record), exc)
                return False
            except Exception as exc:
                attempts = self.max_attempts if isinstance(exc, PermanentError) else attempts + 1
                self._attempts[key] = attempts
                if attempts < self.max_attempts:
                    log.warning(
                        "kafka record %s failed (%r), attempt %d of %d",
                        where(record),
                        exc,
                        attempts,
                        self.max_attempts,
                    )
                    return False
                error: BaseException = exc
            else:
                self._attempts.pop(key, None)
                return True
        else:
            error = self._errors.get(key) or RuntimeError("retries exhausted")
        self._errors[key] = error
        try:
            await self.dead_letter(record, error, attempts)
        except Exception as exc:
            # Never skip a record whose dead letter is not stored: it stays uncommitted.
            log.warning("kafka record %s: dead letter not stored (%r)", where(record), exc)
            return False
        self._attempts.pop(key, None)
        self._errors.pop(key, None)
        self.dead_lettered += 1
        return True
