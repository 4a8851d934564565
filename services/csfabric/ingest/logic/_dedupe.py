"""Keys that make one event count once: seen-set fingerprints and ids, the DLQ's message id."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from csfabric.events import ActionEventData
from csfabric.ingest.logic._poll import row_time


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


def dlq_msg_id(body: bytes) -> str:
    """The DLQ's Nats-Msg-Id: a redelivered bad message is dead-lettered once."""
    return "dlq:ingest:" + hashlib.sha256(body).hexdigest()
