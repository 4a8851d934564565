"""csfabric — an event-driven automation fabric for Apache CloudStack clouds."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("csfabric")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
