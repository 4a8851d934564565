"""The models whose JSON Schemas ``csfabric schemas export`` writes into ``schemas/``."""

from pydantic import BaseModel

from csfabric.events._cloudstack import FAMILIES
from csfabric.events._lifecycle import LIFECYCLE
from csfabric.kernel import AuditRecord, CloudEvent
from csfabric.kernel.bus import DeadLetter
from csfabric.kernel.policy import PolicyBase, PolicyDocument

__all__ = ["SCHEMA_MODELS"]

# File stem (``<stem>.schema.json``) → model.  Stems are part of the contract: a
# CloudEvent's ``dataschema`` names them (payload models carry theirs as ``schema_stem``).
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "cloudevent": CloudEvent,
    "audit-record": AuditRecord,
    "dead-letter": DeadLetter,
    # The fields every policy kind shares, and the document shape; each installed kind's
    # full document schema is added as policy-<kind> by render_schemas.
    "policy-base": PolicyBase,
    "policy-document": PolicyDocument,
    **{model.schema_stem: model for model in (*FAMILIES.values(), *LIFECYCLE.values())},
}
