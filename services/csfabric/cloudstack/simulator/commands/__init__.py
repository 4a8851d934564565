"""The simulated API commands, one module per resource family.

Importing this package registers every command with the simulator's registry (``_registry``);
that is all it is for, so it exports nothing.  The commands must not know the HTTP server
or the feeds: each gets the world's state and parameters and returns CloudStack's answer.
"""

from csfabric.cloudstack.simulator.commands import (  # noqa: F401  (importing registers them)
    _addresses,
    _apis,
    _attach,
    _core,
    _directory,
    _offerings,
    _power,
    _projects,
    _snapshot_policies,
    _snapshots,
    _storage,
    _vms,
)

__all__: list[str] = []
