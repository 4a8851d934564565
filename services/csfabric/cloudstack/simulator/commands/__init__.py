"""The simulated API commands, one module per resource family; importing this package
registers every command with :mod:`csfabric.cloudstack.simulator._registry`."""

from csfabric.cloudstack.simulator.commands import _core, _projects, _snapshots, _storage, _vms

__all__ = ["_core", "_projects", "_snapshots", "_storage", "_vms"]
