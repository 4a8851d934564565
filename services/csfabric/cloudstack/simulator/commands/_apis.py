"""``listApis``: the API described from the registry, so generic clients discover it.

Also the parameter declarations of commands registered without them (their modules predate
``Param``); ``declare_missing`` folds them into the registry once every module is loaded.
Those belong in each command's decorator and should move there.
"""

from __future__ import annotations

from dataclasses import replace

from csfabric.cloudstack.simulator._call import Call, Json
from csfabric.cloudstack.simulator._errors import invalid_parameter
from csfabric.cloudstack.simulator._registry import COMMANDS, Command, Param, api

_U = "uuid"
_P = Param("projectid", _U, entity="project", description="the project's id")
_L = Param("listall", "boolean", description="all resources the caller may see")
_ZONEIDS = Param("zoneids", "list", entity="zone", description="zones to copy to", since="4.19.0")
_LATER: dict[str, tuple[Param, ...]] = {
    "createSnapshot": (
        Param("volumeid", _U, True, "volume", "The ID of the disk volume"),
        Param("name", description="the name of the snapshot"),
        Param("policyid", _U, entity="snapshotpolicy", description="policy id of the snapshot"),
        Param("quiescevm", "boolean", description="quiesce the VM before the snapshot"),
        Param("asyncbackup", "boolean", description="back the snapshot up asynchronously"),
        Param("tags", "map", description="Map of tags (key/value pairs)"),
        _ZONEIDS,
    ),
    "listSnapshots": (
        Param("id", _U, entity="snapshot", description="lists snapshot by snapshot ID"),
        Param("volumeid", _U, entity="volume", description="the ID of the disk volume"),
        Param("zoneid", _U, entity="zone", description="list snapshots by zone id"),
        Param("name", description="lists snapshot by snapshot name"),
        Param("intervaltype", description="valid values are HOURLY, DAILY, WEEKLY, and MONTHLY"),
        Param("showunique", "boolean", description="one row per snapshot (default true)"),
        _L,
        _P,
    ),
    "deleteSnapshot": (
        Param("id", _U, True, "snapshot", "The ID of the snapshot"),
        Param("zoneid", _U, entity="zone", description="delete only this zone's copy"),
    ),
    "copySnapshot": (
        Param("id", _U, True, "snapshot", "the ID of the snapshot"),
        Param("destzoneid", _U, entity="zone", description="the ID of the destination zone"),
        Param("destzoneids", "list", entity="zone", description="destination zones"),
        Param("sourcezoneid", _U, entity="zone", description="the ID of the source zone"),
    ),
    "listProjects": (
        Param("id", _U, entity="project", description="list projects by project ID"),
        Param("name", description="list projects by name"),
        Param("state", description="list projects by state"),
        _L,
    ),
    "suspendProject": (Param("id", _U, True, "project", "id of the project to be suspended"),),
    "activateProject": (Param("id", _U, True, "project", "id of the project to be modified"),),
    "deleteProject": (
        Param("id", _U, True, "project", "id of the project to be deleted"),
        Param("cleanup", "boolean", description="delete the project's resources too"),
    ),
    "listResourceLimits": (
        Param("resourcetype", "integer", description="type of resource (0-11)"),
        Param("account", description="list resources by account"),
        Param("domainid", _U, entity="domain", description="list only resources in this domain"),
        _P,
    ),
    "updateResourceLimit": (
        Param("resourcetype", "integer", True, description="type of resource to update"),
        Param("max", "long", description="maximum resource limit (-1 unlimited)"),
        Param("account", description="update the resource limit of this account"),
        Param("domainid", _U, entity="domain", description="the domain of the account"),
        _P,
    ),
}


def declare_missing() -> None:
    for name, params in _LATER.items():
        cmd = COMMANDS.get(name)
        if cmd is not None and not cmd.params:
            COMMANDS[name] = replace(cmd, params=params)


def _param(p: Param) -> Json:
    # ``related`` (the list command of the parameter's entity) is left out: it is null for
    # many parameters, and clients do not need it to call the API.
    out: Json = {"name": p.name, "description": p.description, "type": p.type}
    out |= {"length": 255, "required": p.required}
    if p.since:
        out["since"] = p.since
    return out


# The object key a sync command answers with (lists: beside ``count``).
_ANSWERS = {"deleteVolume": "success", "deleteSnapshotPolicies": "success"}
_ANSWERS |= {"createSnapshotPolicy": "snapshotpolicy", "updateResourceLimit": "resourcelimit"}
_ANSWERS |= {"listAsyncJobs": "asyncjobs"}
# queryAsyncJobResult answers with AsyncJobResponse itself, not an object under a key.
_JOB_FIELDS = (
    "accountid",
    "account",
    "domainid",
    "domainpath",
    "userid",
    "cmd",
    "jobprocstatus",
    "jobresultcode",
    "jobresulttype",
    "jobresult",
    "jobinstancetype",
    "jobinstanceid",
    "created",
    "completed",
    "jobid",
    "jobstatus",
)


def _item_key(cmd: Command) -> str:
    if cmd.name in _ANSWERS:
        return _ANSWERS[cmd.name]
    noun = cmd.name.removeprefix("list").lower()
    # listApis → api, listSnapshotPolicies → snapshotpolicy, listZones → zone
    return noun.removesuffix("ies") + "y" if noun.endswith("ies") else noun.removesuffix("s")


def _response(cmd: Command) -> list[Json]:
    """The answer's top-level keys (CloudStack lists the response class's fields here)."""
    if cmd.isasync:
        return [
            {"name": "jobid", "description": "the UUID of the latest async job", "type": "string"},
            {"name": "jobstatus", "description": "the current status of the job", "type": "int"},
        ]
    if cmd.name == "queryAsyncJobResult":
        return [{"name": f, "description": "", "type": "string"} for f in _JOB_FIELDS]
    key = _item_key(cmd)
    if not cmd.name.startswith("list"):
        return [{"name": key, "description": f"the {key} answered", "type": "object"}]
    return [
        {"name": "count", "description": "the number of items, before paging", "type": "int"},
        {"name": key, "description": f"the {key} items", "type": "list"},
    ]


def render_api(cmd: Command) -> Json:
    out: Json = {"name": cmd.name, "description": cmd.description or cmd.name}
    out |= {"isasync": cmd.isasync}
    out["params"] = [_param(p) for p in cmd.params]
    out["response"] = _response(cmd)
    return out


@api(
    "listApis",
    "discovery.ListApisCmd",
    params=(Param("name", description="API name"),),
    description="lists all available apis on the server, provided by the Api Discovery plugin",
)
async def list_apis(call: Call) -> Json:
    cmds = sorted(COMMANDS.values(), key=lambda c: c.name)
    if (name := call.get("name")) is not None:
        cmds = [c for c in cmds if c.name == name]
        if not cmds:
            raise invalid_parameter(
                f"Api Discovery plugin was unable to find an api by that name: {name}"
            )
    return call.list_response("api", cmds, render_api)
