"""The ``data`` of CloudStack's four event families, as ingest writes it onto the bus.

Field names are CloudStack's own body keys (``entityuuid``, ``dataCenterId``,
``old-state``); where Python cannot spell one the attribute differs and the alias is the
key.  Next to them ingest adds ``category`` (the family), ``eventDateTime`` as RFC 3339
with CloudStack's own offset, ``entity``/``resource`` as simple type names, ``failed``
(actions) and ``fsmEvent`` (state), and ``native``: the body exactly as CloudStack sent
it (for a ``listEvents`` row, the row), where related-entity keys (``DataCenter``,
``ServiceOffering`` …) and anything a newer release adds are found.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from csfabric.events._base import EventTime, Payload

ActionStatus = Literal["Created", "Scheduled", "Started", "Completed"]
StateStatus = Literal["preStateTransitionEvent", "postStateTransitionEvent"]

_NATIVE = "the body as CloudStack sent it (for a listEvents row: the row), every key kept"
_WHEN = "eventDateTime as RFC 3339, with the management server's own offset"


class ActionEventData(Payload):
    """``cloudstack.action.<EVENT>``: an API action's progress (ActionEvent)."""

    schema_stem = "cloudstack-action"

    category: Literal["action"] = "action"
    event: str = Field(description="the event name, e.g. VM.CREATE")
    event_time: EventTime = Field(alias="eventDateTime", description=_WHEN)
    status: ActionStatus
    failed: bool = Field(
        description="a Completed action whose description says it failed (CloudStack has"
        " no failed status)"
    )
    description: str | None = None
    user: str | None = Field(None, description="uuid of the user who called")
    account: str | None = Field(
        None, description="account uuid (for project resources: often the caller's)"
    )
    entity: str | None = Field(None, description="type of the entity, e.g. VirtualMachine")
    entityuuid: str | None = Field(None, description="uuid of the entity; the event's subject")
    project: str | None = Field(None, description="project uuid, when CloudStack sent it")
    native: dict[str, Any] = Field(description=_NATIVE)


class UsageEventData(Payload):
    """``cloudstack.usage.<EVENT>``: a usage record's start or end (UsageEvent)."""

    schema_stem = "cloudstack-usage"

    category: Literal["usage"] = "usage"
    event: str = Field(description="the usage event name, e.g. VM.CREATE")
    event_time: EventTime = Field(alias="eventDateTime", description=_WHEN)
    id: str = Field(description="uuid of the resource; the event's subject")
    resource: str = Field(description="type of the resource, e.g. VirtualMachine")
    zone: str | None = Field(None, description="zone uuid")
    account: str | None = Field(None, description="account uuid")
    native: dict[str, str] = Field(description=_NATIVE)


class AlertEventData(Payload):
    """``cloudstack.alert.<EVENT>``: an alert (``ALERT.COMPUTE.HOST`` is the host-down one)."""

    schema_stem = "cloudstack-alert"

    category: Literal["alert"] = "alert"
    event: str = Field(description="the alert name, e.g. ALERT.COMPUTE.HOST")
    event_time: EventTime = Field(alias="eventDateTime", description=_WHEN)
    data_center_id: str | None = Field(
        None, alias="dataCenterId", description="zone uuid; the event's subject"
    )
    pod_id: str | None = Field(None, alias="podId", description="pod uuid")
    subject: str | None = Field(None, description="the alert's one-line subject")
    body: str | None = Field(None, description="the alert's text")
    native: dict[str, str] = Field(description=_NATIVE)


class StateEventData(Payload):
    """``cloudstack.state.<ResourceType>.<FsmEvent>``: one resource state transition."""

    schema_stem = "cloudstack-state"

    category: Literal["state"] = "state"
    event_time: EventTime = Field(alias="eventDateTime", description=_WHEN)
    id: str = Field(description="uuid of the resource; the event's subject")
    resource: str = Field(description="type of the resource, e.g. VirtualMachine")
    old_state: str = Field(alias="old-state")
    new_state: str = Field(alias="new-state")
    status: StateStatus | None = Field(
        None, description="VMs only: published before and after the transition commits"
    )
    fsm_event: str | None = Field(
        None,
        alias="fsmEvent",
        description="the state-machine event (StopRequested …); null when the feed does not"
        " carry it (Kafka, polling): the type then ends in .Transition",
    )
    native: dict[str, str] = Field(description=_NATIVE)


CloudStackData = ActionEventData | UsageEventData | AlertEventData | StateEventData

# CloudEvent type family (``cloudstack.<family>.…``) → its payload model.
FAMILIES: dict[str, type[CloudStackData]] = {
    "action": ActionEventData,
    "usage": UsageEventData,
    "alert": AlertEventData,
    "state": StateEventData,
}

__all__ = [
    "FAMILIES",
    "ActionEventData",
    "ActionStatus",
    "AlertEventData",
    "CloudStackData",
    "StateEventData",
    "StateStatus",
    "UsageEventData",
]
