"""CloudStack's own event formats, byte for byte, as its event-bus plugins publish them.

The simulator emits these and the ingest side parses them, so both share one definition.
Sources checked in apache/cloudstack (see docs/cloudstack-formats.md):

* ``framework/events/.../Event.java``: ``setDescription(Object)`` serialises the description
  map with ``new Gson()`` — compact, HTML-safe escaping, null values dropped.
* ``ActionEventUtils.publishOnEventBus``: keys ``project`` (only for project accounts),
  ``user``, ``account``, ``event``, ``status``, ``entity``, ``entityuuid``, related
  first-class entities by type name, ``description`` and ``eventDateTime`` formatted with
  ``new SimpleDateFormat("yyyy-MM-dd HH:mm:ss Z")`` in the server's default zone.
* ``UsageEventUtils``: ``event``, ``zone``, ``resource`` (Java class name), ``id``,
  ``account``, ``eventDateTime``; ``AlertManagerImpl``: ``event``, ``dataCenterId``,
  ``podId``, ``subject``, ``body``, ``eventDateTime``; the state listeners:
  ``resource``, ``id``, ``old-state``, ``new-state`` (+ ``status`` for VMs), published
  before and after the transition commits.
* ``RabbitMQEventBus.createRoutingKey``: ``source.category.type.resourceType.uuid`` with
  each part's dots replaced by ``-`` and a null/empty part replaced by ``*``.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Literal

__all__ = [
    "ACTION_STATUSES",
    "Category",
    "NativeEvent",
    "action_event",
    "alert_event",
    "format_event_datetime",
    "gson_dumps",
    "parse_event_datetime",
    "routing_key_part",
    "state_event",
    "usage_event",
]

Category = Literal["ActionEvent", "UsageEvent", "AlertEvent", "ResourceStateEvent"]
ACTION_STATUSES = ("Created", "Scheduled", "Started", "Completed")
DEFAULT_SOURCE = "management-server"  # ManagementService.Name

# Gson's default (HTML-safe) writer escapes these; Python's json module does not.
_GSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "=": "\\u003d",
    "'": "\\u0027",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GSON_RE = re.compile("[<>&='\u2028\u2029]")
# A Python str may hold lone surrogates (Java strings can too); escape them so the bytes
# stay valid UTF-8 and still parse back to the same string.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def gson_dumps(body: dict[str, str]) -> bytes:
    """Serialise a flat string map the way ``new Gson().toJson(map)`` does."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    text = _GSON_RE.sub(lambda m: _GSON_ESCAPES[m.group()], text)
    text = _SURROGATE_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text.encode("utf-8")


def routing_key_part(part: str | None) -> str:
    """One routing-key word: dots would split the topic word, so they become dashes."""
    if not part:
        return "*"
    return part.replace(".", "-")


def format_event_datetime(dt: datetime, tz: tzinfo) -> str:
    """``yyyy-MM-dd HH:mm:ss Z`` (Java's ``Z`` is ``+HHMM``, never seconds or a colon)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # the fabric's clock is UTC; naive means UTC here
    local = dt.astimezone(tz)
    offset = local.utcoffset()
    minutes = round(offset.total_seconds() / 60) if offset is not None else 0
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{local:%Y-%m-%d %H:%M:%S} {sign}{hours:02d}{mins:02d}"


def parse_event_datetime(text: str) -> datetime:
    """Inverse of :func:`format_event_datetime` (tz-aware)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z")


@dataclass(frozen=True)
class NativeEvent:
    """One message as CloudStack puts it on its event bus."""

    category: Category
    event_type: str
    resource_type: str | None
    resource_uuid: str | None
    body: dict[str, str]
    account_uuid: str | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Exact instant for listEvents filtering; the body only keeps whole seconds.
    when: datetime | None = None

    def routing_key(self, source: str = DEFAULT_SOURCE) -> str:
        parts = (source, self.category, self.event_type, self.resource_type, self.resource_uuid)
        return ".".join(routing_key_part(p) for p in parts)

    def body_json(self) -> bytes:
        return gson_dumps(self.body)

    @property
    def kafka_key(self) -> bytes | None:
        """Record key: the resource uuid; alerts and entity-less actions have none."""
        return self.resource_uuid.encode() if self.resource_uuid else None

    @property
    def description(self) -> str | None:
        return self.body.get("description")


def _clean(body: dict[str, str | None]) -> dict[str, str]:
    # Gson drops null map values; keep the insertion order for readable bodies.
    return {k: v for k, v in body.items() if v is not None}


def action_event(
    event: str,
    status: str,
    description: str,
    *,
    user: str,
    account: str,
    entity: str | None,
    entity_uuid: str | None,
    when: datetime,
    tz: tzinfo,
    project: str | None = None,
    related: dict[str, str] | None = None,
    event_id: str | None = None,
) -> NativeEvent:
    """An ActionEvent; ``account`` is the owning (for projects: the project's) account."""
    if status not in ACTION_STATUSES:
        raise ValueError(f"unknown action event status {status!r}")
    body: dict[str, str | None] = {
        "project": project,
        "user": user,
        "account": account,
        "event": event,
        "status": status,
        "entity": entity,
        "entityuuid": entity_uuid,
    }
    body.update(related or {})
    body["description"] = description
    body["eventDateTime"] = format_event_datetime(when, tz)
    return NativeEvent(
        category="ActionEvent",
        event_type=event,
        resource_type=entity,
        resource_uuid=entity_uuid,
        body=_clean(body),
        account_uuid=account,
        event_id=event_id or str(uuid.uuid4()),
        when=when,
    )


def usage_event(
    event: str,
    *,
    zone: str | None,
    resource_class: str,
    resource_uuid: str,
    account: str,
    when: datetime,
    tz: tzinfo,
    extra: dict[str, str] | None = None,
    event_id: str | None = None,
) -> NativeEvent:
    """A usage event; ``resource_class`` is a Java class name (``com.cloud.vm.VirtualMachine``)."""
    body: dict[str, str | None] = {
        "event": event,
        "zone": zone,
        "resource": resource_class,
        "id": resource_uuid,
        "account": account,
        "eventDateTime": format_event_datetime(when, tz),
    }
    body.update(extra or {})
    return NativeEvent(
        category="UsageEvent",
        event_type=event,
        resource_type=resource_class,
        resource_uuid=resource_uuid,
        body=_clean(body),
        account_uuid=account,
        event_id=event_id or str(uuid.uuid4()),
        when=when,
    )


def alert_event(
    event: str,
    *,
    zone_uuid: str | None,
    pod_uuid: str | None,
    subject: str,
    body: str,
    when: datetime,
    tz: tzinfo,
    event_id: str | None = None,
) -> NativeEvent:
    """An alert (``ALERT.COMPUTE.HOST`` is the only host-down signal); no resource, no key."""
    payload: dict[str, str | None] = {
        "event": event,
        "dataCenterId": zone_uuid,
        "podId": pod_uuid,
        "subject": subject,
        "body": body,
        "eventDateTime": format_event_datetime(when, tz),
    }
    return NativeEvent(
        category="AlertEvent",
        event_type=event,
        resource_type=None,
        resource_uuid=None,
        body=_clean(payload),
        event_id=event_id or str(uuid.uuid4()),
        when=when,
    )


def state_event(
    resource_type: str,
    resource_uuid: str,
    fsm_event: str,
    old_state: str,
    new_state: str,
    *,
    when: datetime,
    tz: tzinfo,
    status: str | None = None,
    account: str | None = None,
    event_id: str | None = None,
) -> NativeEvent:
    """One state-change message; the routing-key type is the FSM event, not ``VM.STOP``.

    CloudStack publishes each transition twice; call this once with
    ``status="preStateTransitionEvent"`` and once with ``"postStateTransitionEvent"`` for
    VMs (other resources: ``status=None``, possibly byte-identical twice).
    """
    body: dict[str, str | None] = {
        "resource": resource_type,
        "id": resource_uuid,
        "old-state": old_state,
        "new-state": new_state,
        "status": status,
        "eventDateTime": format_event_datetime(when, tz),
    }
    return NativeEvent(
        category="ResourceStateEvent",
        event_type=fsm_event,
        resource_type=resource_type,
        resource_uuid=resource_uuid,
        body=_clean(body),
        account_uuid=account,
        event_id=event_id or str(uuid.uuid4()),
        when=when,
    )
