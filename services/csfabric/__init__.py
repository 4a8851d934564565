"""csfabric — an event-driven automation fabric for Apache CloudStack clouds.

The packages, top layer first (``docs/architecture.md`` draws them; import-linter checks
them): ``cli`` (the ``csfabric`` command) > ``devstack`` (``csfabric dev``) > services
(``ingest`` …, independent of each other) > ``cloudstack`` > ``events`` > ``kernel``.
Each package's ``__init__`` is its door.  A newcomer starts at ``csfabric.kernel``'s door.
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("csfabric")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
