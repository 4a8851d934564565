"""CloudStack's native event messages → CloudEvents (DESIGN "Contracts"), for every feed.

Ingest and the gateway both call :func:`parse_native`; the poller calls
:func:`parse_list_events_row`.  Both accept what CloudStack really sends (all-string values,
null keys left out, old Java-class entity names, any zone offset, a BOM) and raise
:class:`EnvelopeError` with a reason for anything else, so bad input is dead-lettered, never
crashes a feed.

Category: the AMQP routing key's category word when there is a routing key, else inferred
from the body's keys (see :func:`infer_family`); webhooks carry ActionEvents only.

State events: the FSM event name (``StopRequested`` …) exists only in the AMQP routing key.
From Kafka, polling or a routing key whose type is ``*`` the type is
``cloudstack.state.<ResourceType>.Transition`` (:data:`UNKNOWN_FSM_EVENT`) and
``data.fsmEvent`` is null; the id does not depend on it (identity is over the body), so the
same transition from AMQP and Kafka is still stored once, under whichever came first.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from csfabric.cloudstack._native import ACTION_STATUSES, routing_key_part
from csfabric.cloudstack._parse_body import check_unicode, decode_body
from csfabric.cloudstack._parse_fields import (
    TEST_WEBHOOK_BODY,
    UNKNOWN_FSM_EVENT,
    Family,
    check_event_name,
    check_token,
    infer_family,
    is_failed,
    parse_datetime,
    routing_family,
    simple_type,
    subject_of,
    typed_fields,
    validate,
)
from csfabric.cloudstack._parse_identity import IDENTITY_NAMESPACE, event_identity
from csfabric.events import FAMILIES
from csfabric.kernel import DEFAULT_MAX_BYTES, CloudEvent, EnvelopeError, make_event, quote

Transport = Literal["amqp", "kafka", "webhook", "poll"]
EVENT_ID_HEADER = "X-CS-Event-ID"
EVENT_TYPE_HEADER = "X-CS-Event"
_LIST_EVENTS_DATE = "%Y-%m-%dT%H:%M:%S%z"  # the API's date format, e.g. 2024-11-28T09:15:00+0100
# `data` of each family is the events model of that family; dataschema names its schema.
_DATASCHEMA: dict[str, str] = {family: model.dataschema() for family, model in FAMILIES.items()}


@dataclass(frozen=True)
class NativeMessage:
    """One message as a feed received it; ``headers`` are the webhook's HTTP headers."""

    body: bytes
    transport: Transport
    routing_key: str | None = None
    kafka_key: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """HTTP header names are case-insensitive; the mapping may come in any case."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True)
class _RoutingKey:
    family: Family
    event_word: str | None  # the type part, dashes for dots; None when CloudStack sent "*"


def _parse_routing_key(key: str) -> _RoutingKey:
    # source.category.type.resourceType.uuid; CloudStack turns dots inside a part into
    # dashes, so a real key has exactly five words.
    parts = key.split(".")
    if len(parts) != 5:
        raise EnvelopeError(
            f"routing key {quote(key)} has {len(parts)} words,"
            " not source.category.type.resourceType.uuid"
        )
    family = routing_family(parts[1])
    word = parts[2]
    return _RoutingKey(family, None if word in ("*", "") else word)


def _guess_family(body: Mapping[str, str]) -> Family | None:
    try:
        return infer_family(body)
    except EnvelopeError:
        return None  # validation names what is missing


def parse_native(
    msg: NativeMessage, *, source: str, max_bytes: int = DEFAULT_MAX_BYTES
) -> CloudEvent | None:
    """One native message → its CloudEvent; ``None`` for CloudStack's test webhook delivery.

    Raises :class:`EnvelopeError` (reason set) for anything no CloudStack sends.
    """
    body = decode_body(msg.body, max_bytes=max_bytes)
    if body == TEST_WEBHOOK_BODY:
        if msg.transport == "webhook":
            return None  # answered 200, never stored
        raise EnvelopeError("CloudStack's test webhook body arrived outside a webhook")
    routing = _parse_routing_key(msg.routing_key) if msg.routing_key is not None else None
    if msg.transport == "webhook":
        family: Family = "action"  # webhooks carry ActionEvents only
        looks_like = routing.family if routing is not None else _guess_family(body)
        if looks_like not in (None, "action"):
            raise EnvelopeError(f"webhooks carry action events only, this is a {looks_like} event")
    elif routing is not None:
        family = routing.family
    else:
        family = infer_family(body)
    when = validate(family, body)
    # Both come from the same Java string, so a mismatch is forged or corrupted.
    word = routing.event_word if routing is not None else None
    if word is not None and family != "state" and word != routing_key_part(body["event"]):
        raise EnvelopeError(
            f"routing key type {quote(word)} does not match event {quote(body['event'])}"
        )
    data = typed_fields(family, body, when)
    if family == "state":
        resource = simple_type(body["resource"])
        fsm = word
        if fsm is not None:
            check_token("state-machine event", fsm)
        data["fsmEvent"] = fsm
        type_ = f"cloudstack.state.{resource}.{fsm or UNKNOWN_FSM_EVENT}"
    else:
        type_ = f"cloudstack.{family}.{body['event']}"
    data["native"] = dict(body)
    extensions: dict[str, str] = {}
    if (event_id := msg.header(EVENT_ID_HEADER)) is not None and event_id.strip():
        extensions["cseventid"] = event_id.strip()
    return make_event(
        type=type_,
        source=source,
        id=event_identity(family, body),
        subject=subject_of(family, body),
        time=when,
        dataschema=_DATASCHEMA[family],
        data=data,
        **extensions,
    )


def parse_list_events_row(row: Mapping[str, Any], *, source: str) -> CloudEvent:
    """One ``listEvents`` row (EventResponse) → a ``cloudstack.action.<type>`` CloudEvent.

    A row is not the pushed body (names instead of uuids, API date format), so its id is
    UUIDv5 over ``listEvents`` + the row uuid; ``cseventid`` carries the row uuid, which is
    also a webhook's ``X-CS-Event-ID``, so the poller can skip what webhooks delivered.
    """
    if not isinstance(row, Mapping):
        raise EnvelopeError(f"listEvents row must be an object, got {type(row).__name__}")
    row_id = _row_str(row, "id", required=True)
    event = check_event_name(_row_str(row, "type", required=True) or "")
    status = _row_str(row, "state", required=True)
    if status not in ACTION_STATUSES:
        raise EnvelopeError(f"listEvents state {quote(status)} is not one of {ACTION_STATUSES}")
    created = _row_str(row, "created", required=True) or ""
    when = parse_datetime(created, "listEvents created", _LIST_EVENTS_DATE)
    description = _row_str(row, "description") or ""
    data: dict[str, Any] = {
        "category": "action",
        "event": event,
        "eventDateTime": when.isoformat(),
        "status": status,
        "description": description,
    }
    # Same meaning as the pushed body's keys (uuids); names stay in `native` only.
    for key, target in (("accountid", "account"), ("projectid", "project")):
        if (value := _row_str(row, key)) is not None:
            data[target] = value
    if (rtype := _row_str(row, "resourcetype")) is not None:
        data["entity"] = simple_type(rtype)
    entity_uuid = _row_str(row, "resourceid")
    if entity_uuid is not None:
        data["entityuuid"] = entity_uuid
    data["failed"] = is_failed({"status": status or "", "description": description})
    data["native"] = dict(row)
    return make_event(
        type=f"cloudstack.action.{event}",
        source=source,
        id=str(uuid.uuid5(IDENTITY_NAMESPACE, f"listEvents\n{row_id}")),
        subject=entity_uuid or None,
        time=when,
        dataschema=_DATASCHEMA["action"],
        data=data,
        cseventid=row_id or "",
    )


def _row_str(row: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    value = row.get(key)
    if value is None or value == "":
        if required:
            raise EnvelopeError(f"listEvents row without {quote(key)}")
        return None
    if not isinstance(value, str):
        raise EnvelopeError(f"listEvents {quote(key)} must be a string, got {type(value).__name__}")
    check_unicode(key, value)
    return value


__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "UNKNOWN_FSM_EVENT",
    "NativeMessage",
    "event_identity",
    "parse_list_events_row",
    "parse_native",
]
