"""ParamProcessWorker's uuid translation: every ``uuid`` parameter names a live entity.

CloudStack turns each ``uuid`` (and ``list`` of uuids) parameter into an internal id before
the command runs; a value that names nothing of the parameter's kind fails with 431
"Unable to execute API command <cmd> due to invalid value. Invalid parameter <name>
value=<v> due to incorrect long value format, or entity does not exist or due to incorrect
parameter annotation for the field in api cmd class." (a ServerApiException, cserrorcode
9999).  ``-1`` passes for ``projectid`` only — CloudStack passes it everywhere as a
hard-coded special case, but only list calls' ``projectid=-1`` ("every project") means
anything; elsewhere its service layer refuses the id, which the simulator does at once.
A malformed value of a parameter with ``since`` set is dropped rather than refused, as
the source does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from csfabric.cloudstack.simulator._errors import invalid_uuid
from csfabric.cloudstack.simulator._registry import Command, Param
from csfabric.cloudstack.simulator._world import World

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# kind → the world's table of that kind (the @EntityReference of the response class).
KINDS: dict[str, Callable[[World], Mapping[str, object]]] = {
    "zone": lambda w: w.zones,
    "domain": lambda w: w.domains,
    "account": lambda w: {a.id: a for a in w.accounts.values() if a.project_id is None},
    "user": lambda w: {u.id: u for a in w.accounts.values() for u in a.users},
    "project": lambda w: w.projects,
    "network": lambda w: w.networks,
    "vm": lambda w: w.vms,
    "volume": lambda w: w.volumes,
    "snapshot": lambda w: w.snapshots,
    "snapshotpolicy": lambda w: w.snapshot_policies,
    "serviceoffering": lambda w: w.service_offerings,
    "diskoffering": lambda w: w.disk_offerings,
    "template": lambda w: w.templates,
    "kubernetescluster": lambda w: w.kubernetes,
    "job": lambda w: w.jobs,
}


def _exists(world: World, param: Param, value: str) -> bool | None:
    """True/False; None when the value is to be dropped (malformed, ``since`` set)."""
    if value == "-1" and param.name == "projectid":
        return True
    if not _UUID.match(value):
        if param.since:
            return None
        return False
    assert param.entity is not None
    return value in KINDS[param.entity](world)


def translate(cmd: Command, params: dict[str, str], world: World) -> None:
    """Check every uuid parameter of ``cmd`` in ``params`` (lower-cased names), in place."""
    for param in cmd.params:
        if param.entity is None or not params.get(param.name):
            continue
        raw = params[param.name]
        values = [v for v in raw.split(",") if v] if param.type == "list" else [raw]
        kept = []
        for value in values:
            ok = _exists(world, param, value)
            if ok is False:
                raise invalid_uuid(cmd.name, param.name, value)
            if ok:
                kept.append(value)
        if len(kept) != len(values):
            params[param.name] = ",".join(kept)
