"""``listApis``: the API described from the registry, so generic clients discover it.

Every command declares its parameters in its own decorator (``Param``), so the checks the
server makes and the description given here come from one place.
"""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json
from csfabric.cloudstack.simulator._errors import invalid_parameter
from csfabric.cloudstack.simulator._registry import COMMANDS, Command, Param, api


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
