"""Which services exist: the ``csfabric.services`` entry-point group, plus test registrations.

A service declares itself in ``pyproject.toml``::

    [project.entry-points."csfabric.services"]
    snapshots = "csfabric.snapshots.app:setup"

where ``setup`` is ``async def setup(ctx: ServiceContext) -> None`` (see
:mod:`csfabric.kernel.service._runtime`).  Entry points keep the kernel ignorant of services: the
CLI and ``csfabric dev`` find them without importing any, and a service is only imported
when it is loaded to run.  Its pure ``decide`` function is registered the same way under
:data:`DECIDERS_GROUP`, so ``csfabric audit rerun`` can call every service's logic.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, cast

from csfabric.kernel.errors import ConfigError

if TYPE_CHECKING:
    from csfabric.kernel.service._runtime import ServiceContext

SERVICES_GROUP = "csfabric.services"
DECIDERS_GROUP = "csfabric.deciders"

ServiceSetup = Callable[["ServiceContext"], Awaitable[None]]

# Names become metric labels, durable names, subjects and CLI arguments.
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

_registered: dict[str, ServiceSpec] = {}


@dataclass(frozen=True)
class ServiceSpec:
    """One runnable service; :meth:`load` imports it."""

    name: str
    target: str  # "module:attr", or a description of a programmatic registration
    origin: str  # "entry-point" | "registered"
    _setup: ServiceSetup | None = None

    def load(self) -> ServiceSetup:
        """The service's ``setup`` callable; a broken target is a :class:`ConfigError`."""
        if self._setup is not None:
            return self._setup
        module_name, sep, attr = self.target.partition(":")
        if not sep or not module_name or not attr:
            raise ConfigError(f"service {self.name!r}: target {self.target!r} is not module:attr")
        try:
            obj: object = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"service {self.name!r}: cannot load {self.target!r}: {exc}") from exc
        if not callable(obj):
            raise ConfigError(f"service {self.name!r}: {self.target!r} is not callable")
        # Signature checks happen when it is called: a callable is all we can verify here.
        return cast("ServiceSetup", obj)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"service name {name!r} must be lowercase letters, digits and '-', "
            "starting with a letter (at most 40 characters)"
        )


def register(name: str, factory: ServiceSetup | str) -> ServiceSpec:
    """Register a service without packaging (tests); it shadows an entry point of that name."""
    _check_name(name)
    if isinstance(factory, str):
        spec = ServiceSpec(name, factory, "registered")
    else:
        target = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', '?')}"
        spec = ServiceSpec(name, target, "registered", factory)
    _registered[name] = spec
    return spec


def unregister(name: str) -> None:
    _registered.pop(name, None)


def available() -> dict[str, ServiceSpec]:
    """Every service, sorted by name; empty when none is installed yet."""
    found: dict[str, ServiceSpec] = {}
    for ep in entry_points(group=SERVICES_GROUP):
        # A badly named entry point cannot be run; skip it rather than break every command.
        if _NAME.match(ep.name):
            found[ep.name] = ServiceSpec(ep.name, ep.value, "entry-point")
    found.update(_registered)
    return dict(sorted(found.items()))


__all__ = [
    "DECIDERS_GROUP",
    "SERVICES_GROUP",
    "ServiceSetup",
    "ServiceSpec",
    "available",
    "register",
    "unregister",
]
