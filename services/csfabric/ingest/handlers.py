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

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from csfabric.cloudstack import NativeMessage, parse_list_events_row, parse_native
from csfabric.events import ActionEventData, parse_as
from csfabric.ingest.logic import Outcome, dlq_msg_id, pushed_fingerprint, row_fingerprint, seen_key
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel import CloudEvent, EnvelopeError, PermanentError, TransientError, clip
from csfabric.kernel.bus import DeadLetter, dlq_subject, retry_broker
from csfabric.kernel.service import ServiceContext

log = logging.getLogger(__name__)

SEEN_BUCKET = "csfabric_ingest_seen"
# A claim older than this (wall seconds) is a claimer that crashed before it published or
# released: it may be taken over.  Wall time, because it outlasts a publish that waits for
# NATS (the bus's own retries, wall time, ~15 s by default, each attempt with its timeout).
CLAIM_STALE_AFTER = 120.0
# How long a claim held by another feed or replica is waited for before giving up with a
# TransientError (the feed tries the message again later; nothing is lost or acked).
CLAIM_WAIT = 5.0
_CLAIMED = b"claimed "
_CLAIM_POLL = 0.05

T = TypeVar("T")
Claim = dict[str, int]  # seen-set key → the revision of our claim on it


class SeenSet:
    """Keys of ActionEvents already stored (row uuids and fingerprints), TTL = the horizon.

    Claimed before the publish with ``kv.create`` (atomic: of two feeds or replicas only
    one creates a key), so check-then-publish is not a race.  A value ``claimed <how>
    <unix time>`` is a publish in flight; anything else (``poll``, ``webhook`` …) means
    stored.  A failed publish releases its claims, and a claim left by a crash between
    claim and publish is taken over once older than ``stale_after``, so neither loses the
    event.
    """

    def __init__(
        self,
        kv: KeyValue,
        *,
        stale_after: float = CLAIM_STALE_AFTER,
        wait: float = CLAIM_WAIT,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.kv = kv
        self.stale_after = stale_after
        self.wait = wait
        self.now = now

    async def claim(self, keys: list[str], how: str) -> Claim | None:
        """Claim every key; None when one says "stored" already (a duplicate).

        Raises :class:`TransientError` when another holder keeps a fresh claim longer than
        ``wait``, or NATS is away; claims made so far are released first.
        """
        held: Claim = {}
        try:
            for key in sorted(set(keys)):  # one order everywhere: two claimers never deadlock
                revision = await self._claim_one(key, how)
                if revision is None:
                    await self.release(held)
                    return None
                held[key] = revision
        except BaseException:
            await self.release(held)
            raise
        return held

    async def mark(self, held: Claim, how: str) -> None:
        """The event is stored: turn our claims into "stored" entries."""
        for key, revision in held.items():
            try:
                await _retry(functools.partial(self.kv.update, key, how.encode(), last=revision))
            except KeyWrongLastSequenceError:
                # Our claim went stale and was taken over: stored is stored all the same.
                await _retry(functools.partial(self.kv.put, key, how.encode()))

    async def release(self, held: Claim) -> None:
        """Give our claims back (the publish failed), so a retry can claim them again."""
        for key, revision in held.items():
            try:
                await self.kv.delete(key, last=revision)
            except Exception as exc:  # already taken over, or NATS away: it goes stale
                log.info("seen-set claim %s not released (%r); it will go stale", key, exc)

    async def _claim_one(self, key: str, how: str) -> int | None:
        deadline = time.monotonic() + self.wait
        while True:
            value = _CLAIMED + f"{how} {self.now():.3f}".encode()
            try:
                return await _retry(functools.partial(self.kv.create, key, value))
            except KeyWrongLastSequenceError:
                pass
            try:
                entry = await _retry(functools.partial(self.kv.get, key))
            except (KeyNotFoundError, KeyDeletedError):
                entry = None  # released meanwhile: claim it again
            if entry is not None and entry.value is not None:
                since = _claimed_at(entry.value)
                if since is None:
                    return None  # stored
                if self.now() - since > self.stale_after:
                    try:
                        update = functools.partial(self.kv.update, key, value, last=entry.revision)
                        return await _retry(update)
                    except KeyWrongLastSequenceError:
                        pass  # someone else took it over first; look again
            if time.monotonic() > deadline:
                raise TransientError(f"seen-set key {key} is claimed by another feed")
            await asyncio.sleep(_CLAIM_POLL)  # wall time: it waits for another process


def _claimed_at(value: bytes) -> float | None:
    """The claim's time for ``claimed <how> <time>``; None for a stored entry."""
    if not value.startswith(_CLAIMED):
        return None
    try:
        return float(value.rsplit(b" ", 1)[-1])
    except ValueError:
        return 0.0  # unreadable claim: treat as ancient, so it can be taken over


async def _retry(call: Callable[[], Awaitable[T]]) -> T:
    return await retry_broker(call, what="seen-set")


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
        """One pushed message (AMQP, Kafka, webhook) → its outcome, after JetStream's ack.

        Input that cannot become a stored event (bad body, over the limits, or a parser
        bug) is dead-lettered at once; what it raises is "not taken": NATS is away
        (:class:`TransientError`) or an unclassified error the feed retries a few times.
        """
        self.ctx.metrics.event_in(f"cloudstack.{msg.transport}")
        try:
            event = parse_native(msg, source=self.source, max_bytes=self.max_bytes)
        except Exception as error:  # EnvelopeError, or a parser bug: retrying cannot help
            await self._dead_letter(msg.body, _as_permanent(error), _where(msg))
            return "dead-lettered"
        if event is None:
            return "test"  # CloudStack's "does this webhook work?" ping
        try:
            keys = self._pushed_keys(event, msg)
            return await self._publish(event, keys, msg.transport)
        except PermanentError as error:  # e.g. over NATS's max_payload: retrying cannot help
            await self._dead_letter(msg.body, error, _where(msg))
            return "dead-lettered"

    async def ingest_row(self, row: Mapping[str, Any]) -> Outcome:
        """One ``listEvents`` row; skipped when its uuid or fingerprint is in the seen-set."""
        self.ctx.metrics.event_in("cloudstack.poll")
        raw = json.dumps(row, sort_keys=True, default=str).encode("utf-8", "backslashreplace")
        try:
            event = parse_list_events_row(row, source=self.source)
            keys = [k for k in (seen_key(str(row.get("id", ""))), row_fingerprint(row)) if k]
        except Exception as error:
            await self._dead_letter(raw, _as_permanent(error), "poll:listEvents")
            return "dead-lettered"
        try:
            return await self._publish(event, keys, "poll")
        except PermanentError as error:
            await self._dead_letter(raw, error, "poll:listEvents")
            return "dead-lettered"

    async def dead_letter(self, msg: NativeMessage, error: BaseException, attempts: int) -> None:
        """A feed gave up on ``msg`` after ``attempts`` failed: store its dead letter.

        Raises when the letter is not stored; the feed must then keep the message.
        """
        reason = f"{type(error).__name__} after {attempts} attempts: {error}"
        await self._dead_letter(msg.body, error, _where(msg), reason=reason, deliveries=attempts)

    async def _publish(self, event: CloudEvent, keys: list[str], how: str) -> Outcome:
        if self.seen is None or not keys:
            ack = await self.ctx.bus.publish_event(event)
            return "duplicate" if ack.duplicate else "stored"
        # Claimed before the publish: of two feeds or replicas with the same event, one
        # publishes and the other sees its claim (check-then-publish would let both).
        held = await self.seen.claim(keys, how)
        if held is None:
            return "duplicate"
        try:
            ack = await self.ctx.bus.publish_event(event)
        except BaseException:
            await self.seen.release(held)  # a retry must be able to claim and publish
            raise
        # A crash right here leaves the claim; it goes stale and a later copy takes it
        # over and republishes — the same id, which the stream's duplicate window drops.
        await self.seen.mark(held, how)
        return "duplicate" if ack.duplicate else "stored"

    def _pushed_keys(self, event: CloudEvent, msg: NativeMessage) -> list[str]:
        if self.seen is None:
            return []
        keys: list[str] = []
        if self.settings.kafka_offset_reset == "earliest":
            # A new Kafka group replays the topic past the stream's 2 h duplicate window:
            # every pushed event's id (the same on every feed) is kept for the seen-set's TTL.
            keys.append(f"ev.{event.id}")
        if not event.type.startswith("cloudstack.action."):
            return keys  # only ActionEvents have listEvents rows
        data = parse_as(ActionEventData, event)  # PayloadError: a parser bug, dead-lettered
        if (row_id := event.extensions.get("cseventid")) and (key := seen_key(str(row_id))):
            keys.append(key)
        if fp := pushed_fingerprint(data, event.time):
            keys.append(fp)
        return keys

    async def _dead_letter(
        self,
        body: bytes,
        error: BaseException,
        where: str,
        *,
        reason: str | None = None,
        deliveries: int = 1,
    ) -> None:
        reason = clip(reason or str(error) or type(error).__name__, 1500, one_line=True)
        # A lone surrogate quoted in a reason would make the header unsendable.
        reason = reason.encode("utf-8", "backslashreplace").decode()
        room = self.ctx.bus.nc.max_payload - 16384  # headers included
        if len(body) > room:
            reason = f"{reason} (dead letter keeps the first {room} of {len(body)} bytes)"
            body = body[:room]
        letter = DeadLetter(
            service=self.ctx.name,
            reason=reason,
            error=type(error).__name__,
            subject=where,
            deliveries=deliveries,
            time=self.ctx.clock.now(),
            original=body,
        )
        subject = dlq_subject(self.ctx.name)
        await self.ctx.bus.publish(subject, body, msg_id=dlq_msg_id(body), headers=letter.headers())
        self.ctx.metrics.dead_letter(type(error).__name__)
        log.warning("dead-lettered a %s message: %s", where, reason)


def _as_permanent(error: Exception) -> Exception:
    """A parser's EnvelopeError as it is; anything else is a parser bug, named as such."""
    if isinstance(error, EnvelopeError):
        return error
    wrapped = PermanentError(f"parser failed: {type(error).__name__}: {error}")
    wrapped.__cause__ = error
    return wrapped


def _where(msg: NativeMessage) -> str:
    """DLQ ``subject``: the feed, and the routing key when there is one."""
    return f"{msg.transport}:{msg.routing_key}" if msg.routing_key else msg.transport


__all__ = ["SEEN_BUCKET", "Pipeline", "SeenSet"]
