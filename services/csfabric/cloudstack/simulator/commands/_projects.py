"""Projects (suspend/activate/delete) and resource limits (ResourceLimitResponse)."""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json, cs_date
from csfabric.cloudstack.simulator._errors import invalid_parameter
from csfabric.cloudstack.simulator._jobs import event_account
from csfabric.cloudstack.simulator._limits import vm_count
from csfabric.cloudstack.simulator._registry import UUID, JobPlan, Param, api, async_api
from csfabric.cloudstack.simulator._state import RESOURCE_TYPES, Project
from csfabric.cloudstack.simulator.commands._snapshot_stores import counted

# ProjectResponse key prefixes per resource type (limits are strings, "Unlimited" for -1).
_PREFIX = {
    0: "vm",
    1: "ip",
    2: "volume",
    3: "snapshot",
    4: "template",
    6: "network",
    7: "vpc",
    8: "cpu",
    9: "memory",
    10: "primarystorage",
    11: "secondarystorage",
}


def _usage(call: Call, owner: str, rtype: int) -> int:
    w = call.world
    if rtype == 0:
        return vm_count(w, owner)
    if rtype == 2:
        return sum(1 for v in w.volumes.values() if v.account_id == owner)
    if rtype == 3:
        return sum(1 for s in w.snapshots.values() if s.account_id == owner and counted(s))
    if rtype == 6:
        return sum(1 for n in w.networks.values() if n.account_id == owner)
    if rtype == 10:
        return sum(v.size for v in w.volumes.values() if v.account_id == owner) // 1024**3
    return 0


def render_project(call: Call, proj: Project) -> Json:
    dom = call.world.domains[proj.domainid]
    out: Json = {
        "id": proj.id,
        "name": proj.name,
        "displaytext": proj.displaytext,
        "domainid": dom.id,
        "domain": dom.name,
        "owner": [{"account": proj.owner}],
        "projectaccountname": call.world.accounts[proj.account_id].name,
        "state": proj.state,
        "tags": call.tags(proj.id),
    }
    for rtype, prefix in _PREFIX.items():
        limit = call.world.limit_for(proj.id, rtype)
        used = _usage(call, proj.account_id, rtype)
        out[f"{prefix}limit"] = "Unlimited" if limit < 0 else str(limit)
        # ProjectResponse: totals are Long, except secondarystoragetotal, a Java float.
        out[f"{prefix}total"] = float(used) if rtype == 11 else used
        out[f"{prefix}available"] = "Unlimited" if limit < 0 else str(max(limit - used, 0))
    vms = [v for v in call.world.vms.values() if v.account_id == proj.account_id]
    out["vmstopped"] = sum(1 for v in vms if v.state == "Stopped")
    out["vmrunning"] = sum(1 for v in vms if v.state == "Running")
    out["created"] = cs_date(proj.created)
    return out


_PROJECT = Param("projectid", UUID, entity="project", description="the project's id")


def _project(call: Call) -> Project:
    return call.world.projects[call.req("id")]


@api(
    "listProjects",
    "user.project.ListProjectsCmd",
    params=(
        Param("id", UUID, entity="project", description="list projects by project ID"),
        Param("name", description="list projects by name"),
        Param("state", description="list projects by state"),
        Param("domainid", UUID, entity="domain", description="list only resources in this domain"),
        Param("listall", "boolean", description="all resources the caller may see"),
    ),
    description="Lists projects and provides detailed information for listed projects",
)
async def list_projects(call: Call) -> Json:
    projs = list(call.world.projects.values())
    if call.account.accounttype != 1:
        root = call.world.domains[call.account.domainid].path + "/"
        projs = [p for p in projs if (call.world.domains[p.domainid].path + "/").startswith(root)]
    for field in ("id", "name", "state", "domainid"):
        if (want := call.get(field)) is not None:
            projs = [p for p in projs if str(getattr(p, field)).lower() == want.lower()]
    projs = [p for p in projs if call.match_tags(p.id)]
    return call.list_response("project", projs, lambda p: render_project(call, p))


def _transition(call: Call, event: str, verb: str, new_state: str) -> JobPlan:
    proj = _project(call)

    async def run() -> Json:
        old = proj.state
        proj.state = new_state
        if new_state == "Suspended":
            for vm in call.world.vms.values():
                if vm.account_id == proj.account_id and vm.state == "Running":
                    vm.state = "Stopped"
                    await call.emitter.state(
                        "VirtualMachine",
                        vm.id,
                        "StopRequested",
                        "Running",
                        "Stopped",
                        account_id=vm.account_id,
                    )
        await call.emitter.state(
            "Project", proj.id, event, old, new_state, account_id=proj.account_id
        )
        return {"project": render_project(call, proj)}

    return JobPlan(
        run, event, f"{verb} project: {proj.id}", proj.account_id, "Project", proj.id, "Project"
    )


@async_api(
    "suspendProject",
    "user.project.SuspendProjectCmd",
    params=(Param("id", UUID, True, "project", "id of the project to be suspended"),),
    description="Suspends a project",
)
async def suspend_project(call: Call) -> JobPlan:
    return _transition(call, "PROJECT.SUSPEND", "Suspending", "Suspended")


@async_api(
    "activateProject",
    "user.project.ActivateProjectCmd",
    params=(Param("id", UUID, True, "project", "id of the project to be modified"),),
    description="Activates a project",
)
async def activate_project(call: Call) -> JobPlan:
    return _transition(call, "PROJECT.ACTIVATE", "Activating", "Active")


@async_api(
    "deleteProject",
    "user.project.DeleteProjectCmd",
    params=(
        Param("id", UUID, True, "project", "id of the project to be deleted"),
        Param(
            "cleanup", "boolean", description="delete the project's resources too", since="4.16.0"
        ),
    ),
    description="Deletes a project",
)
async def delete_project(call: Call) -> JobPlan:
    proj = _project(call)
    cleanup = call.flag("cleanup")
    w = call.world

    async def run() -> Json:
        owned = [v for v in w.vms.values() if v.account_id == proj.account_id]
        if owned and not cleanup:
            raise invalid_parameter(f"Project {proj.name} has resources; use cleanup=true")
        for vm in owned:
            w.vms.pop(vm.id, None)
        for table in (w.volumes, w.networks, w.snapshots, w.kubernetes):
            for key in [k for k, v in table.items() if v.account_id == proj.account_id]:
                table.pop(key, None)
        w.projects.pop(proj.id, None)
        return {"success": True}

    return JobPlan(
        run,
        "PROJECT.DELETE",
        f"Deleting project: {proj.id}",
        proj.account_id,
        "Project",
        proj.id,
        "Project",
    )


def _owner(call: Call) -> tuple[str, Json]:
    """(limit owner id, owner fields) from projectid / account+domainid / the caller."""
    if (pid := call.get("projectid")) is not None:
        proj: Project = call.project(pid)
        dom = call.world.domains[proj.domainid]
        return proj.id, {
            "projectid": proj.id,
            "project": proj.name,
            "domainid": dom.id,
            "domain": dom.name,
        }
    acct = call.account
    if (name := call.get("account")) is not None:
        domid = call.get("domainid") or acct.domainid
        found = [a for a in call.world.accounts.values() if a.name == name and a.domainid == domid]
        if not found:
            raise invalid_parameter(f"Unable to find account by name {name} in domain {domid}")
        acct = found[0]
    dom = call.world.domains[acct.domainid]
    return acct.id, {"account": acct.name, "domainid": dom.id, "domain": dom.name}


def _render_limit(owner_fields: Json, rtype: int, limit: int) -> Json:
    return owner_fields | {
        "resourcetype": str(rtype),
        "resourcetypename": RESOURCE_TYPES[rtype],
        "max": limit,
    }


@api(
    "listResourceLimits",
    "user.resource.ListResourceLimitsCmd",
    params=(
        Param("resourcetype", "integer", description="type of resource (0-11)"),
        Param("account", description="list resources by account"),
        Param("domainid", UUID, entity="domain", description="list only resources in this domain"),
        _PROJECT,
    ),
    description="Lists resource limits.",
)
async def list_resource_limits(call: Call) -> Json:
    owner, fields = _owner(call)
    types = sorted(RESOURCE_TYPES)
    if (rt := call.get("resourcetype")) is not None:
        types = [t for t in types if str(t) == rt]
    rows = [(t, call.world.limit_for(owner, t)) for t in types]
    return call.list_response("resourcelimit", rows, lambda r: _render_limit(fields, *r))


@api(
    "updateResourceLimit",
    "user.resource.UpdateResourceLimitCmd",
    params=(
        Param("resourcetype", "integer", True, description="type of resource to update"),
        Param("max", "long", description="maximum resource limit (-1 unlimited)"),
        Param("account", description="update the resource limit of this account"),
        Param("domainid", UUID, entity="domain", description="the domain of the account"),
        _PROJECT,
    ),
    description="Updates resource limits for an account or domain.",
)
async def update_resource_limit(call: Call) -> Json:
    rtype = call.int_param("resourcetype", -1)
    if rtype not in RESOURCE_TYPES:
        raise invalid_parameter(f"Please specify valid resource type: {call.req('resourcetype')}")
    owner, fields = _owner(call)
    limit = call.int_param("max", -1)
    call.world.limits[(owner, rtype)] = limit
    await call.emitter.action(
        "RESOURCE.LIMIT.UPDATE",
        "Completed",
        f"Updated resource limit {RESOURCE_TYPES[rtype]} to {limit}",
        user_id=call.user.id,
        # the caller's account, or the project's when the request names one
        account_id=event_account(call, "RESOURCE.LIMIT.UPDATE", call.account.id, job_thread=True),
    )
    return {"resourcelimit": _render_limit(fields, rtype, limit)}
