"""The field rules of :mod:`csfabric.cloudstack._parse`: category, validation, typed fields.

Every check here rejects something no CloudStack release sends (see
docs/cloudstack-formats.md and :mod:`csfabric.cloudstack._native`), and every
rejection is an :class:`EnvelopeError` whose reason names the defect, because the reason
is all an operator sees on the dead-letter subject.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from csfabric.cloudstack._native import ACTION_STATUSES
from csfabric.kernel import EnvelopeError, quote

Family = Literal["action", "usage", "alert", "state"]

# Routing-key category word → family.  AsyncJobEvent is real CloudStack traffic (job status
# changes) but no contract family, so it gets its own reason instead of "unknown".
ROUTING_CATEGORIES: dict[str, Family] = {
    "ActionEvent": "action",
    "UsageEvent": "usage",
    "AlertEvent": "alert",
    "ResourceStateEvent": "state",
}
_UNSUPPORTED_CATEGORIES = {"AsyncJobEvent"}
STATE_STATUSES = ("preStateTransitionEvent", "postStateTransitionEvent")
# Kafka and webhook bodies do not carry the FSM event name (only the AMQP routing key does);
# this token stands in for it.  No CloudStack FSM event is called "Transition", so a
# subscriber can tell "name unknown" from a real event, and `<Type>.>` still gets both.
UNKNOWN_FSM_EVENT = "Transition"
TEST_WEBHOOK_BODY = {"CloudStack": "works!"}

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"
# One NATS subject token each: dots separate tokens, so only the event name may hold them.
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")
# Java class names (older entity style): lowercase package words, then the type name.
_JAVA_CLASS = re.compile(r"^(?:[a-z_][a-z0-9_]*[.\-])+([A-Z][A-Za-z0-9_$]*)$")
_FAILED_PATTERNS = re.compile(r"^Error while|\bfailed\b|\bfailure\b", re.IGNORECASE)


def infer_family(body: Mapping[str, str]) -> Family:
    """Category of a body without a routing key (Kafka, polling): by its keys."""
    if "old-state" in body or "new-state" in body:
        return "state"
    if "dataCenterId" in body or body.get("event", "").startswith("ALERT."):
        return "alert"
    if "status" in body:
        return "action"
    if "resource" in body and "id" in body:
        return "usage"
    raise EnvelopeError(
        "cannot tell the category: no old-state/new-state, dataCenterId, status or resource+id"
    )


def routing_family(category: str) -> Family:
    if category in ROUTING_CATEGORIES:
        return ROUTING_CATEGORIES[category]
    if category in _UNSUPPORTED_CATEGORIES:
        raise EnvelopeError(f"routing-key category {quote(category)} is not ingested (no family)")
    raise EnvelopeError(f"unknown routing-key category {quote(category)}")


def simple_type(name: str) -> str:
    """``com.cloud.vm.VirtualMachine`` (or ``com-cloud-vm-VirtualMachine``) → ``VirtualMachine``."""
    match = _JAVA_CLASS.match(name)
    return match.group(1) if match else name


def parse_datetime(text: str, what: str = "eventDateTime", fmt: str = DATETIME_FORMAT) -> datetime:
    """``yyyy-MM-dd HH:mm:ss Z`` in any zone offset → a tz-aware datetime, in UTC's range."""
    try:
        when = datetime.strptime(text, fmt)
    except ValueError:
        example = "yyyy-MM-dd HH:mm:ss Z' (2024-11-28 09:15:00 +0100)"
        if fmt != DATETIME_FORMAT:
            example = "yyyy-MM-ddTHH:mm:ssZ' (2024-11-28T09:15:00+0100)"
        raise EnvelopeError(f"{what} {quote(text)} is not '{example}") from None
    return in_utc_range(when, what, text)


def in_utc_range(when: datetime, what: str, text: str) -> datetime:
    """``when`` itself, once its UTC instant is known to exist (years 1-9999).

    ``0001-01-01 00:00:00 +0100`` parses, but its instant is before year 1: every
    ``astimezone(UTC)`` on it would raise OverflowError, not a reason anyone can read.
    """
    try:
        when.astimezone(UTC)
    except (OverflowError, ValueError):
        raise EnvelopeError(
            f"{what} {quote(text)} is out of range: its UTC instant is outside years 1-9999"
        ) from None
    return when


def require(body: Mapping[str, str], family: Family, *keys: str) -> None:
    for key in keys:
        if not body.get(key):
            raise EnvelopeError(f"{family} event without {quote(key)}")


def check_event_name(name: str) -> str:
    if not _EVENT_NAME.match(name):
        raise EnvelopeError(f"event name {quote(name)} is not dotted words (letters, digits, _ -)")
    return name


def check_token(what: str, value: str) -> str:
    if not _TOKEN.match(value):
        raise EnvelopeError(f"{what} {quote(value)} is not one word (letters, digits, _ -)")
    return value


def validate(family: Family, body: Mapping[str, str]) -> datetime:
    """Per-family required keys and values; returns the parsed eventDateTime."""
    require(body, family, "eventDateTime")
    when = parse_datetime(body["eventDateTime"])
    if family == "state":
        require(body, family, "resource", "id", "old-state", "new-state")
        check_token("resource type", simple_type(body["resource"]))
        status = body.get("status")
        if status is not None and status not in STATE_STATUSES:
            raise EnvelopeError(
                f"state event status {quote(status)} is not one of {STATE_STATUSES}"
            )
        return when
    require(body, family, "event")
    check_event_name(body["event"])
    if family == "action":
        require(body, family, "status")
        if body["status"] not in ACTION_STATUSES:
            raise EnvelopeError(
                f"action event status {quote(body['status'])} is not one of {ACTION_STATUSES}"
            )
    elif family == "usage":
        require(body, family, "resource", "id")
    return when


def is_failed(body: Mapping[str, str]) -> bool:
    """A failed action is still ``Completed``; only the description tells."""
    if body.get("status") != "Completed":
        return False
    return bool(_FAILED_PATTERNS.search(body.get("description", "")))


def typed_fields(family: Family, body: Mapping[str, str], when: datetime) -> dict[str, Any]:
    """The ``data`` fields next to ``native``: names as in the body, types made explicit."""
    out: dict[str, Any] = {"category": family}
    if family != "state":
        out["event"] = body["event"]
    out["eventDateTime"] = when.isoformat()  # RFC 3339 with CloudStack's own offset
    if family == "action":
        out |= _pick(body, "status", "description", "user", "account", "entityuuid", "project")
        if "entity" in body:
            out["entity"] = simple_type(body["entity"])
        out["failed"] = is_failed(body)
    elif family == "usage":
        out |= _pick(body, "zone", "id", "account")
        out["resource"] = simple_type(body["resource"])
    elif family == "alert":
        out |= _pick(body, "dataCenterId", "podId", "subject", "body")
    else:
        out |= _pick(body, "id", "old-state", "new-state", "status")
        out["resource"] = simple_type(body["resource"])
    return out


def _pick(body: Mapping[str, str], *keys: str) -> dict[str, str]:
    return {k: body[k] for k in keys if k in body}


def subject_of(family: Family, body: Mapping[str, str]) -> str | None:
    """DESIGN's subject table: action entityuuid, usage/state id, alert dataCenterId."""
    key = {"action": "entityuuid", "usage": "id", "alert": "dataCenterId", "state": "id"}[family]
    return body.get(key) or None


__all__ = [
    "DATETIME_FORMAT",
    "ROUTING_CATEGORIES",
    "STATE_STATUSES",
    "TEST_WEBHOOK_BODY",
    "UNKNOWN_FSM_EVENT",
    "Family",
    "check_event_name",
    "check_token",
    "in_utc_range",
    "infer_family",
    "is_failed",
    "parse_datetime",
    "require",
    "routing_family",
    "simple_type",
    "subject_of",
    "typed_fields",
    "validate",
]
