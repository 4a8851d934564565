"""Ingest's pure decisions: webhook checks, poll windows, seen-set keys, answers.

No I/O here (import-linter forbids brokers, HTTP and the clock), so each rule is unit
tested on its own and the handlers stay thin.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

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


@dataclass(frozen=True)
class Rejection:
    """Why a webhook request is refused: the HTTP status and a reason safe to log."""

    status: int
    reason: str


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
    """None when accepted; a 401 when a secret is configured and the signature is missing or
    wrong.  The comparison is constant-time; the reason never quotes the signature."""
    if secret is None:
        return None
    if not signature:
        return Rejection(401, f"missing {SIGNATURE_HEADER}")
    expected = webhook_signature(secret, body).encode()
    if not hmac.compare_digest(signature.strip().encode(), expected):
        return Rejection(401, f"{SIGNATURE_HEADER} does not match the body")
    return None


def reject_audit_key(remote: str, body: bytes) -> str:
    """Audit key of a refused request: the same forged body from the same address (e.g. the
    sender's retries) is one record, a flood of different ones is many."""
    return "ingest:reject-webhook:" + hashlib.sha256(remote.encode() + b"\0" + body).hexdigest()


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


def native_fingerprint(native: Mapping[str, Any], when: datetime | None) -> str | None:
    """The fingerprint of a parsed ActionEvent body (``data.native``), None for others."""
    if when is None or not isinstance(native.get("event"), str) or "status" not in native:
        return None
    resource = native.get("entityuuid")
    return action_fingerprint(
        str(native["event"]),
        str(native["status"]),
        resource if isinstance(resource, str) else None,
        when,
        str(native.get("description", "")),
    )


def seen_key(event_id: str) -> str | None:
    """A row uuid as a KV key, or None when it holds characters KV keys may not."""
    ok = event_id and all(c.isalnum() or c in "-_" for c in event_id) and event_id.isascii()
    return event_id if ok else None


__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "WEBHOOK_STATUS",
    "Outcome",
    "Rejection",
    "action_fingerprint",
    "api_date",
    "check_request",
    "check_signature",
    "dlq_msg_id",
    "native_fingerprint",
    "next_watermark",
    "parse_watermark",
    "poll_end",
    "poll_start",
    "reject_audit_key",
    "row_fingerprint",
    "row_time",
    "rows_to_process",
    "seen_key",
    "webhook_signature",
]
