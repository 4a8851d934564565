"""Command registry: each command module registers its handlers here by name.

Sync handlers return the inner response object; async handlers return a :class:`JobPlan`
whose ``run`` completes later (after the job latency) and yields the ``jobresult``.
``returns_id`` mirrors CloudStack's BaseAsyncCreateCmd, whose immediate answer carries the
new resource's ``id`` beside the ``jobid``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from csfabric.cloudstack.simulator._call import Call

Json = dict[str, Any]


@dataclass(frozen=True)
class JobPlan:
    run: Callable[[], Awaitable[Json]]
    event: str  # ActionEvent type, e.g. "VM.CREATE"
    description: str
    owner_account_id: str
    entity: str | None = None
    entity_uuid: str | None = None
    instancetype: str | None = None
    returns_id: bool = False


@dataclass(frozen=True)
class Command:
    name: str
    required: tuple[str, ...]
    cmd_class: str
    sync: Callable[[Call], Awaitable[Json]] | None = None
    job: Callable[[Call], Awaitable[JobPlan]] | None = None

    @property
    def response_name(self) -> str:
        return f"{self.name.lower()}response"


COMMANDS: dict[str, Command] = {}
_API_PKG = "org.apache.cloudstack.api.command"


def api(
    name: str, cmd_class: str, *, required: tuple[str, ...] = ()
) -> Callable[[Callable[[Call], Awaitable[Json]]], Callable[[Call], Awaitable[Json]]]:
    def register(fn: Callable[[Call], Awaitable[Json]]) -> Callable[[Call], Awaitable[Json]]:
        COMMANDS[name] = Command(name, required, f"{_API_PKG}.{cmd_class}", sync=fn)
        return fn

    return register


def async_api(
    name: str, cmd_class: str, *, required: tuple[str, ...] = ()
) -> Callable[[Callable[[Call], Awaitable[JobPlan]]], Callable[[Call], Awaitable[JobPlan]]]:
    def register(fn: Callable[[Call], Awaitable[JobPlan]]) -> Callable[[Call], Awaitable[JobPlan]]:
        COMMANDS[name] = Command(name, required, f"{_API_PKG}.{cmd_class}", job=fn)
        return fn

    return register
