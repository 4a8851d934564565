"""TODO: what csfabric.kernel.policy is."""

from csfabric.kernel.policy._gate import ActionGate, GateDecision
from csfabric.kernel.policy._load import load_policies
from csfabric.kernel.policy._model import (
    BlastRadius,
    PolicyBase,
    PolicyDocument,
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
    "Scope",
    "StoredPolicy",
    "document_yaml",
    "kind_schemas",
    "load_policies",
    "register_kind",
]
