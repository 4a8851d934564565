"""Typed event payloads (pydantic): the source of the JSON Schemas in ``schemas/``.

For now the exported models are the fabric's own envelopes, defined in the kernel; the
payload models of individual event types join :data:`SCHEMA_MODELS` as they are written.
``csfabric schemas export`` writes them and ``csfabric schemas check`` (a CI gate) fails
when the committed files drift from the code.

It must not know any service, nor CloudStack's client or simulator: like
``cloudstack``, it may import ``csfabric.kernel`` and nothing else of ours (the layers
contract).  This module is the door: services import the models from ``csfabric.events``.
"""

from pydantic import BaseModel

from csfabric.kernel import AuditRecord, CloudEvent
from csfabric.kernel.bus import DeadLetter
from csfabric.kernel.policy import PolicyBase, PolicyDocument

__all__ = [
    "SCHEMA_MODELS",
    "AuditRecord",
    "CloudEvent",
    "DeadLetter",
    "PolicyBase",
    "PolicyDocument",
]

# File stem (``<stem>.schema.json``) → model.  Stems are part of the contract: a
# CloudEvent's ``dataschema`` names them.
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "cloudevent": CloudEvent,
    "audit-record": AuditRecord,
    "dead-letter": DeadLetter,
    # The fields every policy kind shares, and the document shape; each installed kind's
    # full document schema is added as policy-<kind> by schemas.render_all.
    "policy-base": PolicyBase,
    "policy-document": PolicyDocument,
}
