"""Typed event payloads: what the ``data`` of every event the fabric carries looks like.

The room holds pydantic models of CloudStack's four families as ingest writes them
(:class:`ActionEventData`, :class:`UsageEventData`, :class:`AlertEventData`,
:class:`StateEventData`) and of the lifecycle events other systems publish
(:class:`EnvironmentCreated` …), the way from a CloudEvent to its model
(:func:`payload`, and :func:`typed` to give a handler a :class:`TypedEvent`), and
:data:`SCHEMA_MODELS`, the source of the JSON Schemas in ``schemas/``: ``csfabric schemas
export`` writes them and ``csfabric schemas check`` (a CI gate) fails when the committed
files drift from the code.  A payload's ``dataschema`` is ``urn:csfabric:schema:<stem>:<v>``
(:func:`dataschema`), the ``$id`` of ``schemas/<stem>.schema.json``.

It knows the kernel (the envelope, errors, durations) and pydantic, nothing else of ours:
not CloudStack's wire formats or client (``csfabric.cloudstack`` parses those and builds
this room's payloads), not any service, not a broker.
"""

from csfabric.events._base import SCHEMA_URN, EventTime, Payload, dataschema, parse_dataschema
from csfabric.events._catalogue import SCHEMA_MODELS
from csfabric.events._cloudstack import (
    FAMILIES,
    ActionEventData,
    ActionStatus,
    AlertEventData,
    CloudStackData,
    StateEventData,
    StateStatus,
    UsageEventData,
)
from csfabric.events._lifecycle import (
    LIFECYCLE,
    DrDrillRequested,
    EnvironmentCreated,
    EnvironmentExtended,
    EnvironmentReleased,
    MaintenanceEnded,
    MaintenanceScheduled,
    MaintenanceStarted,
)
from csfabric.events._schemas import SchemaDiff
from csfabric.events._schemas import compare as compare_schemas
from csfabric.events._schemas import export as export_schemas
from csfabric.events._schemas import render_all as render_schemas
from csfabric.events._typed import (
    EventHandler,
    TypedEvent,
    TypedHandler,
    model_for,
    parse_as,
    payload,
    typed,
)
from csfabric.events.errors import PayloadError
from csfabric.kernel import AuditRecord, CloudEvent
from csfabric.kernel.bus import DeadLetter
from csfabric.kernel.policy import PolicyBase, PolicyDocument

__all__ = [
    "FAMILIES",
    "LIFECYCLE",
    "SCHEMA_MODELS",
    "SCHEMA_URN",
    "ActionEventData",
    "ActionStatus",
    "AlertEventData",
    "AuditRecord",
    "CloudEvent",
    "CloudStackData",
    "DeadLetter",
    "DrDrillRequested",
    "EnvironmentCreated",
    "EnvironmentExtended",
    "EnvironmentReleased",
    "EventHandler",
    "EventTime",
    "MaintenanceEnded",
    "MaintenanceScheduled",
    "MaintenanceStarted",
    "Payload",
    "PayloadError",
    "PolicyBase",
    "PolicyDocument",
    "SchemaDiff",
    "StateEventData",
    "StateStatus",
    "TypedEvent",
    "TypedHandler",
    "UsageEventData",
    "compare_schemas",
    "dataschema",
    "export_schemas",
    "model_for",
    "parse_as",
    "parse_dataschema",
    "payload",
    "render_schemas",
    "typed",
]
