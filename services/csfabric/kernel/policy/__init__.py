"""Policies: the documents operators write, and the gate services ask before they act.

The room: the document model (``PolicyBase`` and the registry of kinds services add),
scopes, loading YAML with every problem reported at once, reading and storing documents
in KV (audited and announced), a live watch, the blast-radius windows shared by replicas,
and :class:`ActionGate`, which answers "may policy P act on this resource now?".

It must not know Kafka (policy and kafka are independent siblings in the kernel layers
contract), any service, or CloudStack: a kind is unknown until the service that reads it
registers its model.

This module is the door: import these names from ``csfabric.kernel.policy``, never from
its ``_private`` modules (import-linter's "Door: csfabric.kernel.policy").  Its errors are
in :mod:`csfabric.kernel.policy.errors`, drawn in the tree in :mod:`csfabric.kernel.errors`.
"""

from csfabric.kernel.policy._gate import ActionGate, GateDecision
from csfabric.kernel.policy._load import load_policies
from csfabric.kernel.policy._model import (
    BlastRadius,
    PolicyBase,
    PolicyDocument,
    ResourceRef,
    Scope,
    kind_schemas,
    register_kind,
)
from csfabric.kernel.policy._read import document_yaml
from csfabric.kernel.policy._store import (
    POLICY_SERVICE,
    Change,
    GlobalPause,
    PolicyStore,
    StoredPolicy,
)
from csfabric.kernel.policy._watch import PolicyWatcher
from csfabric.kernel.policy.errors import (
    BlastStateUnavailable,
    PolicyConflictError,
    PolicyLoadError,
    PolicyProblem,
)

__all__ = [
    "POLICY_SERVICE",
    "ActionGate",
    "BlastRadius",
    "BlastStateUnavailable",
    "Change",
    "GateDecision",
    "GlobalPause",
    "PolicyBase",
    "PolicyConflictError",
    "PolicyDocument",
    "PolicyLoadError",
    "PolicyProblem",
    "PolicyStore",
    "PolicyWatcher",
    "ResourceRef",
    "Scope",
    "StoredPolicy",
    "document_yaml",
    "kind_schemas",
    "load_policies",
    "register_kind",
]
