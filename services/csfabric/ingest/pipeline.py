"""One path from a native CloudStack message to a stored CloudEvent, shared by every feed.

``await pipeline.ingest(msg)`` returns only once JetStream acknowledged the event (or the
dead letter), so a feed that acks/commits/answers 200 after it never loses a message; an
error it raises (NATS away) means "not taken": the feed must not ack, so the message comes
again.  Duplicates are dropped twice over: by the stream's ``Nats-Msg-Id`` window (the event
id follows the identity rule, so the same body through any feed is one message) and, when
the ``listEvents`` poller runs, by the KV seen-set shared with it — a poller row and a
pushed body never share an id, so only the seen-set stops the second copy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from csfabric.cloudstack.parse import NativeMessage, parse_list_events_row, parse_native
from csfabric.kernel.dlq import DeadLetter, dlq_subject
from csfabric.kernel.envelope import CloudEvent
from csfabric.kernel.errors import EnvelopeError, PermanentError
from csfabric.kernel.logs import redact
from csfabric.kernel.runtime import ServiceContext

from .logic import Outcome, dlq_msg_id, native_fingerprint, row_fingerprint, seen_key
from .settings import IngestSettings

log = logging.getLogger(__name__)

SEEN_BUCKET = "csfabric_ingest_seen"


class SeenSet:
    """Keys of ActionEvents already stored (row uuids and fingerprints), TTL = the horizon."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def any(self, keys: list[str]) -> bool:
        for key in keys:
            try:
                entry = await self.kv.get(key)
            except KeyNotFoundError:
                continue
            if entry.value is not None:
                return True
        return False

    async def mark(self, keys: list[str], how: str) -> None:
        for key in keys:
            await self.kv.put(key, how.encode())


class Pipeline:
    """parse → dedupe → publish (or dead-letter), for every feed."""

    def __init__(
        self, ctx: ServiceContext, settings: IngestSettings, *, seen: SeenSet | None = None
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.seen = seen
        self.source = settings.cloud_name
        self.max_bytes = ctx.settings.max_event_bytes

    async def ingest(self, msg: NativeMessage) -> Outcome:
        """One pushed message (AMQP, Kafka, webhook) → its outcome, after JetStream's ack."""
        self.ctx.metrics.event_in(f"cloudstack.{msg.transport}")
        try:
            event = parse_native(msg, source=self.source, max_bytes=self.max_bytes)
        except EnvelopeError as error:
            await self._dead_letter(msg.body, error, _where(msg))
            return "dead-lettered"
        if event is None:
            return "test"  # CloudStack's "does this webhook work?" ping
        keys = self._pushed_keys(event, msg)
        try:
            return await self._publish(event, keys, msg.transport)
        except PermanentError as error:  # e.g. over NATS's max_payload: retrying cannot help
            await self._dead_letter(msg.body, error, _where(msg))
            return "dead-lettered"

    async def ingest_row(self, row: Mapping[str, Any]) -> Outcome:
        """One ``listEvents`` row; skipped when its uuid or fingerprint is in the seen-set."""
        self.ctx.metrics.event_in("cloudstack.poll")
        raw = json.dumps(row, sort_keys=True, default=str).encode()
        try:
            event = parse_list_events_row(row, source=self.source)
        except EnvelopeError as error:
            await self._dead_letter(raw, error, "poll:listEvents")
            return "dead-lettered"
        keys = [k for k in (seen_key(str(row.get("id", ""))), row_fingerprint(row)) if k]
        try:
            return await self._publish(event, keys, "poll")
        except PermanentError as error:
            await self._dead_letter(raw, error, "poll:listEvents")
            return "dead-lettered"

    async def _publish(self, event: CloudEvent, keys: list[str], how: str) -> Outcome:
        if self.seen is not None and keys and await self.seen.any(keys):
            return "duplicate"
        ack = await self.ctx.bus.publish_event(event)
        # Marked after the ack: a crash in between republishes the same id, which the
        # stream's duplicate window drops; marking first could lose the event.
        if self.seen is not None and keys:
            await self.seen.mark(keys, how)
        return "duplicate" if ack.duplicate else "stored"

    def _pushed_keys(self, event: CloudEvent, msg: NativeMessage) -> list[str]:
        if self.seen is None or not isinstance(event.data, dict):
            return []
        if event.data.get("category") != "action":
            return []  # only ActionEvents have listEvents rows
        keys = []
        if (row_id := event.extensions.get("cseventid")) and (key := seen_key(str(row_id))):
            keys.append(key)
        native = event.data.get("native")
        if isinstance(native, dict) and (fp := native_fingerprint(native, event.time)):
            keys.append(fp)
        return keys

    async def _dead_letter(self, body: bytes, error: PermanentError, where: str) -> None:
        reason = redact(str(error) or type(error).__name__)
        room = self.ctx.bus.nc.max_payload - 16384  # headers included
        if len(body) > room:
            reason = f"{reason} (dead letter keeps the first {room} of {len(body)} bytes)"
            body = body[:room]
        letter = DeadLetter(
            service=self.ctx.name,
            reason=reason,
            error=type(error).__name__,
            subject=where,
            deliveries=1,
            time=self.ctx.clock.now(),
            original=body,
        )
        subject = dlq_subject(self.ctx.name)
        await self.ctx.bus.publish(subject, body, msg_id=dlq_msg_id(body), headers=letter.headers())
        self.ctx.metrics.dead_letter(type(error).__name__)
        log.warning("dead-lettered a %s message: %s", where, reason)


def _where(msg: NativeMessage) -> str:
    """DLQ ``subject``: the feed, and the routing key when there is one."""
    return f"{msg.transport}:{msg.routing_key}" if msg.routing_key else msg.transport


__all__ = ["SEEN_BUCKET", "Pipeline", "SeenSet"]
