"""``csfabric dev``'s errors (drawn in the one tree, :mod:`csfabric.kernel.errors`).

Imported through the door, ``csfabric.devstack``.  Both are :class:`ConfigError`: the
machine lacks something, so retrying cannot help; the message says how to install it.
"""

from __future__ import annotations

from csfabric.kernel import ConfigError


class NatsServerNotFoundError(ConfigError):
    """No usable ``nats-server`` binary; the message says how to install one."""


class MissingDependencyError(ConfigError):
    """Something ``--with`` asked for is not installed or not running (exit code 2)."""


__all__ = ["MissingDependencyError", "NatsServerNotFoundError"]
