"""Command registry: each command module registers its handlers here by name.

Sync handlers return the inner response object; async handlers return a :class:`JobPlan`
whose ``run`` completes later (after the job latency) and yields the ``jobresult``.
``returns_id`` mirrors CloudStack's BaseAsyncCreateCmd, whose immediate answer carries the
new resource's ``id`` beside the ``jobid``.

Each command declares its parameters (:class:`Param`, CloudStack's ``@Parameter``): the
server checks required ones and translates ``uuid`` ones (ParamProcessWorker) before the
handler runs, and ``listApis`` describes them to generic clients.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from csfabric.cloudstack.simulator._call import Call

Json = dict[str, Any]
UUID = "uuid"  # the CommandType of an id parameter


@dataclass(frozen=True)
class Param:
    """One ``@Parameter``: ``type`` is CloudStack's CommandType in lower case.

    ``entity`` names the kind a ``uuid`` (or ``list`` of uuids) must be
    (see ``_entities.KINDS``); ``since`` matters because ParamProcessWorker lets a
    pre-3.x parameter's malformed value fail while a newer one's is silently dropped.
    """

    name: str
    type: str = "string"
    required: bool = False
    entity: str | None = None
    description: str = ""
    since: str = ""


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
    params: tuple[Param, ...] = ()
    description: str = ""

    @property
    def response_name(self) -> str:
        return f"{self.name.lower()}response"

    @property
    def isasync(self) -> bool:
        return self.job is not None


COMMANDS: dict[str, Command] = {}
_API_PKG = "org.apache.cloudstack.api.command"


def _declared(required: tuple[str, ...], params: tuple[Param, ...]) -> tuple[str, ...]:
    # A map arrives as ``name[0].key=…``, never as ``name``: handlers check those themselves.
    named = tuple(p.name for p in params if p.required and p.type != "map")
    return tuple(dict.fromkeys(required + named))


def api(
    name: str,
    cmd_class: str,
    *,
    required: tuple[str, ...] = (),
    params: tuple[Param, ...] = (),
    description: str = "",
) -> Callable[[Callable[[Call], Awaitable[Json]]], Callable[[Call], Awaitable[Json]]]:
    def register(fn: Callable[[Call], Awaitable[Json]]) -> Callable[[Call], Awaitable[Json]]:
        COMMANDS[name] = Command(
            name,
            _declared(required, params),
            f"{_API_PKG}.{cmd_class}",
            sync=fn,
            params=params,
            description=description,
        )
        return fn

    return register


def async_api(
    name: str,
    cmd_class: str,
    *,
    required: tuple[str, ...] = (),
    params: tuple[Param, ...] = (),
    description: str = "",
) -> Callable[[Callable[[Call], Awaitable[JobPlan]]], Callable[[Call], Awaitable[JobPlan]]]:
    def register(fn: Callable[[Call], Awaitable[JobPlan]]) -> Callable[[Call], Awaitable[JobPlan]]:
        COMMANDS[name] = Command(
            name,
            _declared(required, params),
            f"{_API_PKG}.{cmd_class}",
            job=fn,
            params=params,
            description=description,
        )
        return fn

    return register
