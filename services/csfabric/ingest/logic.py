"""Ingest's pure decisions: webhook checks, poll windows, seen-set keys, answers.

No I/O here (import-linter forbids brokers, HTTP and the clock), so each rule is unit
tested on its own and the handlers stay thin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from csfabric.events import ActionEventData

Outcome = Literal["stored", "duplicate", "test", "dead-lettered"]

# The webhook's answer per pipeline outcome.  A dead-lettered body still gets 200: its bytes
# are in the DLQ, and CloudStack re-sending a body that cannot parse would not help.
WEBHOOK_STATUS: Mapping[Outcome, int] = {
    "stored": 200,
    "duplicate": 200,
    "test": 200,
    "dead-lettered": 200,
}

SIGNATURE_HEADER = "X-CS-Signature"
EVENT_ID_HEADER = "X-CS-Event-ID"


# Longest received value kept as evidence in a rejection record (a header may be 8 KB).
EVIDENCE_LIMIT = 200
# Longest X-CS-Event-ID kept (CloudStack sends a 36-character uuid).
EVENT_ID_LIMIT = 128
OTHER_SOURCE = "other"
_HMAC_BYTES = 32  # SHA-256


@dataclass(frozen=True)
class Rejection:
    """Why a webhook request is refused: the HTTP status, a reason safe to log, and a short
    ``kind`` that rejections are counted by (``missing-signature``, ``bad-signature`` …)."""

    status: int
    reason: str
    kind: str = ""


def check_request(method: str, content_length: int | None, max_bytes: int) -> Rejection | None:
    """Refuse before reading the body: wrong method, or a declared size over the limit."""
    if method != "POST":
        return Rejection(405, f"method {method} not allowed")
    if content_length is not None and content_length > max_bytes:
        return Rejection(413, f"body of {content_length} bytes exceeds {max_bytes}")
    return None


def webhook_signature(secret: bytes, body: bytes) -> str:
    """CloudStack's ``X-CS-Signature``: base64(HMAC-SHA256(secret, body)), no prefix."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def check_signature(secret: bytes | None, body: bytes, signature: str | None) -> Rejection | None:
    """None when accepted; a 401 when a secret is configured and the signature is missing,
    malformed (not ASCII — aiohttp hands non-UTF-8 bytes on as surrogates —, not base64, not
    32 bytes) or wrong.  No secret means the receiver was started with ``allow_unsigned``.
    The comparison is constant-time; the reason never quotes the signature."""
    if secret is None:
        return None
    if not signature or not signature.strip():
        return Rejection(401, f"missing {SIGNATURE_HEADER}", "missing-signature")
    try:
        given = base64.b64decode(signature.strip().encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        given = b""
    if len(given) != _HMAC_BYTES:
        reason = f"{SIGNATURE_HEADER} is not a base64 HMAC-SHA256"
        return Rejection(401, reason, "malformed-signature")
    expected = hmac.new(secret, body, hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        return Rejection(401, f"{SIGNATURE_HEADER} does not match the body", "bad-signature")
    return None


def usable_header(name: str, value: str) -> bool:
    """Whether a received header value may travel on with the event.

    aiohttp decodes header bytes as UTF-8 with surrogate escapes, so a non-UTF-8 value
    arrives as a string no encoder takes; kept, it would fail the event's serialisation on
    every retry.  The headers are not covered by the signature (only the body is) and the
    event's id comes from the body, so such a value is dropped and the event kept.
    ``X-CS-Event-ID`` must also look like an id (CloudStack sends a uuid).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    if name.lower() == EVENT_ID_HEADER.lower():
        text = value.strip()
        return 0 < len(text) <= EVENT_ID_LIMIT and text.isascii() and text.isprintable()
    return True


def evidence_text(value: str | None, limit: int = EVIDENCE_LIMIT) -> str:
    """A received value as evidence: printable in any encoding, cut to ``limit`` characters."""
    if not value:
        return ""
    text = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        return f"{text[:limit]}… ({len(value)} characters)"
    return text


# -- rejected requests, counted ---------------------------------------------------------------


@dataclass
class RejectCount:
    """Requests from one source refused for one reason within [start, end)."""

    source: str
    kind: str
    reason: str
    start: datetime
    end: datetime
    count: int = 0
    bytes: int = 0
    evidence: dict[str, str] = field(default_factory=dict)  # of the first request, bounded


class RejectTally:
    """Counts of refused webhook requests per (window, source, kind), held in memory.

    An unauthenticated sender must not be able to write one audit record per request (the
    trail would be pushed out), nor make the 401 wait for the audit stream, nor grow memory
    without bound.  So a refusal only counts here, and one record per entry is written once
    its window has ended.  Bounded: at most ``max_sources`` sources a window (later ones count
    as ``other``), at most ``max_windows`` windows waiting (while the audit stream is away,
    the oldest is merged into the next).
    """

    def __init__(self, window: float, max_sources: int = 100, max_windows: int = 60) -> None:
        self.window, self.max_sources, self.max_windows = window, max_sources, max_windows
        self._counts: dict[tuple[int, str, str], RejectCount] = {}
        self._sources: dict[int, set[str]] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def window_end(self, now: datetime) -> datetime:
        """When the window holding ``now`` ends."""
        return self._start(self._index(now) + 1)

    def add(
        self, now: datetime, source: str, why: Rejection, size: int, evidence: Mapping[str, str]
    ) -> None:
        index = self._index(now)
        source = self._admit(index, source)
        key = (index, source, why.kind)
        entry = self._counts.get(key)
        if entry is None:
            entry = RejectCount(
                source=source,
                kind=why.kind,
                reason=why.reason,
                start=self._start(index),
                end=self._start(index + 1),
                evidence={k: evidence_text(v) for k, v in evidence.items()},
            )
            self._counts[key] = entry
        entry.count += 1
        entry.bytes += size
        self._fold()

    def due(self, now: datetime) -> list[RejectCount]:
        """Entries whose window has ended by ``now``, oldest first."""
        return sorted((e for e in self._counts.values() if e.end <= now), key=_order)

    def pending(self) -> list[RejectCount]:
        """Every entry, the open window's too (for the last flush at shutdown)."""
        return sorted(self._counts.values(), key=_order)

    def done(self, entry: RejectCount) -> None:
        """``entry`` is recorded: forget it."""
        for key, held in list(self._counts.items()):
            if held is entry:
                del self._counts[key]
                if not any(k[0] == key[0] for k in self._counts):
                    self._sources.pop(key[0], None)
                return

    def _index(self, now: datetime) -> int:
        return int(now.timestamp() // self.window)

    def _start(self, index: int) -> datetime:
        return datetime.fromtimestamp(index * self.window, UTC)

    def _admit(self, index: int, source: str) -> str:
        sources = self._sources.setdefault(index, set())
        if source in sources:
            return source
        if len(sources) >= self.max_sources:
            return OTHER_SOURCE
        sources.add(source)
        return source

    def _fold(self) -> None:
        while len(self._sources) > self.max_windows:
            oldest, into = sorted(self._sources)[:2]
            self._sources.pop(oldest)
            for key in [k for k in self._counts if k[0] == oldest]:
                old = self._counts.pop(key)
                source = self._admit(into, old.source)
                merged = self._counts.get((into, source, old.kind))
                if merged is None:
                    old.source, old.end = source, self._start(into + 1)
                    self._counts[(into, source, old.kind)] = old
                else:
                    merged.count += old.count
                    merged.bytes += old.bytes
                    merged.start = min(merged.start, old.start)


def _order(entry: RejectCount) -> tuple[datetime, str, str]:
    return entry.start, entry.source, entry.kind


def reject_audit_key(instance: str, entry: RejectCount) -> str:
    """Audit key of one count: stable, so a flush retried after a failure is stored once;
    the instance is part of it, since every replica counts its own requests."""
    parts = (instance, entry.start.isoformat(), entry.source, entry.kind)
    return "ingest:reject-webhook:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


def dlq_msg_id(body: bytes) -> str:
    """The DLQ's Nats-Msg-Id: a redelivered bad message is dead-lettered once."""
    return "dlq:ingest:" + hashlib.sha256(body).hexdigest()


# -- listEvents poller ------------------------------------------------------------------------


def poll_start(
    now: datetime, watermark: datetime | None, *, horizon: float, overlap: float
) -> datetime:
    """Where a poll starts: a little before the watermark (rows with the watermark's second
    may still be arriving), never further back than the horizon (the seen-set's TTL)."""
    oldest = now - timedelta(seconds=horizon)
    if watermark is None:
        return oldest
    return max(oldest, watermark - timedelta(seconds=overlap))


def poll_end(now: datetime, settle: float) -> datetime:
    """Rows newer than this wait for the next poll, giving their webhook time to arrive."""
    return now - timedelta(seconds=settle)


def api_date(when: datetime) -> str:
    """``startdate``/``enddate`` as listEvents takes them (``yyyy-MM-dd HH:mm:ss``, UTC)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def row_time(row: Mapping[str, Any]) -> datetime | None:
    """A listEvents row's ``created`` (``yyyy-MM-dd'T'HH:mm:ssZ``) as a UTC instant."""
    created = row.get("created")
    if not isinstance(created, str):
        return None
    for pattern in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S %z"):
        try:
            return datetime.strptime(created, pattern).astimezone(UTC)
        except ValueError:
            continue
    return None


def rows_to_process(
    rows: Iterable[Mapping[str, Any]], end: datetime
) -> list[tuple[datetime, Mapping[str, Any]]]:
    """Rows with an id and a time up to ``end``, oldest first (listEvents lists newest
    first), so the watermark can advance row by row."""
    timed = []
    for row in rows:
        when = row_time(row)
        if when is not None and when <= end and isinstance(row.get("id"), str) and row["id"]:
            timed.append((when, row))
    timed.sort(key=lambda pair: pair[0])
    return timed


def next_watermark(current: datetime | None, processed: datetime | None) -> datetime | None:
    """The watermark never moves back (a late row within the overlap must not rewind it)."""
    if processed is None:
        return current
    return processed if current is None else max(current, processed)


def parse_watermark(raw: bytes | None) -> datetime | None:
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return None  # a damaged value: start again from the horizon (the seen-set dedupes)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


# -- seen-set keys ----------------------------------------------------------------------------


def action_fingerprint(
    event: str, status: str, resource: str | None, when: datetime, description: str
) -> str:
    """Seen-set key of one ActionEvent that both a listEvents row and a native body yield.

    The native body has no row uuid (only webhooks carry it, as ``X-CS-Event-ID``), so an
    event that came by AMQP or Kafka is matched to its row by what both show: type, status,
    entity uuid, time to the second and description (CloudStack fills both from one EventVO).
    """
    second = when.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    text = "\0".join((event, status, resource or "", second, description))
    return "fp." + hashlib.sha256(text.encode()).hexdigest()


def row_fingerprint(row: Mapping[str, Any]) -> str | None:
    when = row_time(row)
    if when is None or not isinstance(row.get("type"), str):
        return None
    resource = row.get("resourceid")
    return action_fingerprint(
        str(row["type"]),
        str(row.get("state", "")),
        resource if isinstance(resource, str) else None,
        when,
        str(row.get("description", "")),
    )


def pushed_fingerprint(data: ActionEventData, when: datetime | None) -> str | None:
    """The fingerprint of a pushed (AMQP, Kafka, webhook) ActionEvent; None without a time."""
    if when is None:
        return None
    return action_fingerprint(
        data.event, data.status, data.entityuuid, when, data.description or ""
    )


def seen_key(event_id: str) -> str | None:
    """A row uuid as a KV key, or None when it holds characters KV keys may not."""
    ok = event_id and all(c.isalnum() or c in "-_" for c in event_id) and event_id.isascii()
    return event_id if ok else None


__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_ID_LIMIT",
    "EVIDENCE_LIMIT",
    "OTHER_SOURCE",
    "SIGNATURE_HEADER",
    "WEBHOOK_STATUS",
    "Outcome",
    "RejectCount",
    "RejectTally",
    "Rejection",
    "action_fingerprint",
    "api_date",
    "check_request",
    "check_signature",
    "dlq_msg_id",
    "evidence_text",
    "next_watermark",
    "parse_watermark",
    "poll_end",
    "poll_start",
    "pushed_fingerprint",
    "reject_audit_key",
    "row_fingerprint",
    "row_time",
    "rows_to_process",
    "seen_key",
    "usable_header",
    "webhook_signature",
]
