"""The ``listEvents`` catch-up poller: ActionEvents that no push feed delivered (an outage
of ingest, of the broker, or three failed webhook tries) still reach the backbone.

Runs only on the holder of the ``ingest-poller`` lease, every ``poll_interval`` fabric
seconds.  Each poll reads from a little before the watermark (KV ``csfabric_ingest`` key
``poll.watermark``: the newest row processed) — or from ``now - poll_horizon`` at first —
to ``now - poll_settle`` (newer rows wait a poll, so their webhook can come first), and hands
the rows oldest first to :meth:`Pipeline.ingest_row`, which skips what the seen-set knows.
The watermark advances only over rows handled, so a failure re-reads, never skips.

Under its lease, each poll fences (:meth:`Lease.fence`) before it publishes its rows and
again before it writes the watermark, and checks its deadline before every row, so a
poller that stalled past its term stops writing at once (:class:`LeaseLost` ends its work).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from csfabric.cloudstack import CloudStackClient
from csfabric.ingest.handlers import Pipeline
from csfabric.ingest.logic import (
    api_date,
    next_watermark,
    parse_watermark,
    poll_end,
    poll_start,
    rows_to_process,
)
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel import Lease, LeaseLost, get_logger
from csfabric.kernel.service import ServiceContext

log = get_logger(__name__)

STATE_BUCKET = "csfabric_ingest"
WATERMARK_KEY = "poll.watermark"
LEASE_NAME = "ingest-poller"


@dataclass
class PollResult:
    rows: int = 0
    stored: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    watermark: datetime | None = None


class Poller:
    def __init__(
        self,
        ctx: ServiceContext,
        pipeline: Pipeline,
        settings: IngestSettings,
        client: CloudStackClient,
        state: KeyValue,
        *,
        lease: Lease | None = None,
    ) -> None:
        self.ctx, self.pipeline, self.settings = ctx, pipeline, settings
        self.client, self.state = client, state
        self.lease = lease  # when set, every write is fenced by it
        self.polls = 0  # completed polls, for tests and debugging

    async def watermark(self) -> datetime | None:
        try:
            entry = await self.state.get(WATERMARK_KEY)
        except KeyNotFoundError:
            return None
        return parse_watermark(entry.value)

    async def poll_once(self) -> PollResult:
        s = self.settings
        now = self.ctx.clock.now()
        mark = await self.watermark()
        start = poll_start(now, mark, horizon=s.poll_horizon, overlap=s.poll_overlap)
        end = poll_end(now, s.poll_settle)
        result = PollResult(watermark=mark)
        if start > end:
            return result
        # enddate one second later: servers differ on whether the end second is included;
        # rows_to_process applies the exact bound.
        rows = await self.client.list(
            "listEvents",
            listall="true",
            startdate=api_date(start),
            enddate=api_date(end + timedelta(seconds=1)),
        )
        newest: datetime | None = None
        todo = rows_to_process(rows, end)
        if todo and self.lease is not None:
            await self.lease.fence()
        try:
            for when, row in todo:
                if self.lease is not None:
                    self.lease.check()
                outcome = await self.pipeline.ingest_row(row)
                result.rows += 1
                if outcome == "stored":
                    result.stored += 1
                elif outcome == "dead-lettered":
                    result.dead_lettered += 1
                else:
                    result.skipped += 1
                newest = when
        finally:
            # Saved even when a publish failed half-way: rows up to `newest` are stored.
            advanced = next_watermark(mark, newest)
            if advanced is not None and advanced != mark:
                if self.lease is not None:
                    await self.lease.fence()
                await self.state.put(WATERMARK_KEY, advanced.isoformat().encode())
            result.watermark = advanced
        self.polls += 1
        if result.rows:
            log.info(
                "polled listEvents: %d rows, %d stored, %d already seen",
                result.rows,
                result.stored,
                result.skipped,
                extra={"watermark": str(result.watermark)},
            )
        return result

    async def run(self) -> None:
        """Poll forever (until the lease is lost or the service stops)."""
        while True:
            try:
                await self.poll_once()
            except (asyncio.CancelledError, LeaseLost):
                raise  # LeaseLost: the term is over; the lease stops this work
            except Exception as error:  # CloudStack or NATS away: the next poll catches up
                log.warning("listEvents poll failed: %s: %s", type(error).__name__, error)
            await self.ctx.clock.sleep(self.settings.poll_interval)


__all__ = ["LEASE_NAME", "STATE_BUCKET", "WATERMARK_KEY", "PollResult", "Poller"]
