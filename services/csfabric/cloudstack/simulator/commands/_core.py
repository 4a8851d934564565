"""Zones, async jobs, events, tags, network deletion and Kubernetes clusters."""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json, cs_date, render_tag
from csfabric.cloudstack.simulator._errors import CS_CLOUD_RUNTIME, ApiError
from csfabric.cloudstack.simulator._jobs import render_job
from csfabric.cloudstack.simulator._registry import JobPlan, Param, api, async_api
from csfabric.cloudstack.simulator._state import EventRecord, Tag, Zone
from csfabric.cloudstack.simulator._world import World

_KINDS = {
    "uservm": "UserVm",
    "volume": "Volume",
    "snapshot": "Snapshot",
    "network": "Network",
    "project": "Project",
}


def render_zone(zone: Zone) -> Json:
    return {
        "id": zone.id,
        "name": zone.name,
        "description": zone.description,
        "dns1": zone.dns1,
        "internaldns1": zone.internaldns1,
        "guestcidraddress": zone.guestcidraddress,
        "networktype": "Advanced",
        "securitygroupsenabled": False,
        "allocationstate": "Enabled",
        "zonetoken": zone.id.replace("-", "")[:20],
        "dhcpprovider": "VirtualRouter",
        "localstorageenabled": False,
        "tags": [],
        "hasannotations": False,
        "type": "Core",
        "routerprivateinterfacemaxmtu": 1500,
        "routerpublicinterfacemaxmtu": 1500,
        "allowuserspecifyvrmtu": False,
        # Primitive booleans of ZoneResponse (4.20+): Gson always writes them.
        "nsxenabled": False,
        "multiarch": False,
        "routedmodeenabled": False,
    }


@api(
    "listZones",
    "user.zone.ListZonesCmd",
    params=(
        Param("id", "uuid", entity="zone", description="the ID of the zone"),
        Param("name", description="the name of the zone"),
        Param("available", "boolean", description="zones the caller may deploy in"),
    ),
    description="Lists zones",
)
async def list_zones(call: Call) -> Json:
    zones = list(call.world.zones.values())
    if (zid := call.get("id")) is not None:
        zones = [z for z in zones if z.id == zid]
    if (name := call.get("name")) is not None:
        zones = [z for z in zones if z.name == name]
    return call.list_response("zone", zones, render_zone)


@api(
    "queryAsyncJobResult",
    "user.job.QueryAsyncJobResultCmd",
    params=(Param("jobid", "uuid", True, "job", "the ID of the asynchronous job"),),
    description="Retrieves the current status of asynchronous job.",
)
async def query_async_job_result(call: Call) -> Json:
    return render_job(call.world.jobs[call.req("jobid")], call.world)


@api(
    "listAsyncJobs",
    "user.job.ListAsyncJobsCmd",
    params=(
        Param("startdate", "date", description="jobs created at or after this date"),
        Param("listall", "boolean", description="all jobs the caller may see"),
        Param("keyword", description="List by keyword"),
    ),
    description="Lists all pending asynchronous jobs for the account.",
)
async def list_async_jobs(call: Call) -> Json:
    owners = {call.account.id}
    if call.flag("listall") and call.account.accounttype in (1, 2):
        owners = call.visible_owners() | {call.account.id}
        if call.account.accounttype == 1:
            owners |= set(call.world.accounts)
    jobs = [j for j in call.world.jobs.values() if j.account_id in owners]
    if (start := call.get("startdate")) is not None:
        jobs = [j for j in jobs if (cs_date(j.created) or "") >= _norm(start)]
    if (kw := call.get("keyword")) is not None:
        jobs = [j for j in jobs if kw.lower() in j.cmd.lower()]
    return call.list_response("asyncjobs", jobs, lambda j: render_job(j, call.world))


def _render_event(call: Call, ev: EventRecord) -> Json:
    user = next(
        (u for a in call.world.accounts.values() for u in a.users if u.id == ev.user_id), None
    )
    out: Json = {
        "id": ev.id,
        "username": user.username if user else "system",
        "type": ev.type,
        "level": ev.level,
        "description": ev.description,
    }
    out |= call.world.owner_of(ev.account_id)
    if ev.resourceid:
        out |= {"resourceid": ev.resourceid, "resourcetype": ev.resourcetype}
    out |= {"created": cs_date(ev.created), "state": ev.state}
    if ev.parentid:  # the chain's first event (EventVO.startId)
        out["parentid"] = ev.parentid
    out["archived"] = False
    return out


@api(
    "listEvents",
    "user.event.ListEventsCmd",
    params=(
        Param("type", description="the event type"),
        Param("startdate", "date", description="events at or after (yyyy-MM-dd HH:mm:ss)"),
        Param("enddate", "date", description="events at or before (yyyy-MM-dd HH:mm:ss)"),
        Param("listall", "boolean", description="all events the caller may see"),
        Param("projectid", "uuid", entity="project", description="the project's id"),
    ),
    description="A command to list events.",
)
async def list_events(call: Call) -> Json:
    owners = call.visible_owners()
    if call.account.accounttype == 1 and call.flag("listall"):
        owners |= {a.id for a in call.world.accounts.values()}
    events = [e for e in call.world.events if e.account_id in owners]
    if (etype := call.get("type")) is not None:
        events = [e for e in events if e.type == etype]
    start, end = call.get("startdate"), call.get("enddate")
    if start is not None:
        events = [e for e in events if (cs_date(e.created) or "") >= _norm(start)]
    if end is not None:
        events = [e for e in events if (cs_date(e.created) or "") <= _norm(end)]
    events.sort(key=lambda e: e.created, reverse=True)  # CloudStack lists newest first
    return call.list_response("event", events, lambda e: _render_event(call, e))


def _norm(date: str) -> str:
    # listEvents accepts "yyyy-MM-dd" or "yyyy-MM-dd HH:mm:ss"; compare on the API format.
    text = date.replace(" ", "T")
    return text if "T" in text else text + "T00:00:00"


@api(
    "listTags",
    "user.tag.ListTagsCmd",
    params=(
        Param("key", description="list by key"),
        Param("value", description="list by value"),
        Param("resourceid", description="list by resource id"),
        Param("resourcetype", description="list by resource type"),
        Param("listall", "boolean", description="all tags the caller may see"),
        Param("projectid", "uuid", entity="project", description="the project's id"),
    ),
    description="List resource tag(s)",
)
async def list_tags(call: Call) -> Json:
    tags = call.owned(call.world.tags, lambda t: t.account_id)
    for field in ("key", "value", "resourceid"):
        if (want := call.get(field)) is not None:
            tags = [t for t in tags if getattr(t, field) == want]
    if (rtype := call.get("resourcetype")) is not None:
        tags = [t for t in tags if t.resourcetype.lower() == rtype.lower()]
    return call.list_response("tag", tags, lambda t: render_tag(call.world, t))


@async_api(
    "createTags",
    "user.tag.CreateTagsCmd",
    params=(
        Param("resourceids", "list", True, description="list of resources to create the tags for"),
        Param("resourcetype", required=True, description="type of the resource"),
        Param("tags", "map", True, description="Map of tags (key/value pairs)"),
    ),
    description="Creates resource tag(s)",
)
async def create_tags(call: Call) -> JobPlan:
    rtype = _KINDS.get(call.req("resourcetype").lower(), call.req("resourcetype"))
    ids = call.req("resourceids").split(",")
    pairs = _tag_pairs(call)

    async def run() -> Json:
        persist_tags(call.world, ids, rtype, pairs, call.account.id)
        return {"success": True}

    return JobPlan(run, "CREATE_TAGS", "creating tags", call.account.id)


@async_api(
    "deleteTags",
    "user.tag.DeleteTagsCmd",
    params=(
        Param("resourceids", "list", True, description="Delete tags for resource id(s)"),
        Param("resourcetype", required=True, description="Delete tag by resource type"),
        Param("tags", "map", description="Delete tags matching key/value pairs"),
    ),
    description="Deleting resource tag(s)",
)
async def delete_tags(call: Call) -> JobPlan:
    ids = set(call.req("resourceids").split(","))
    pairs = _tag_pairs(call)

    async def run() -> Json:
        def doomed(t: object) -> bool:
            rid, key = getattr(t, "resourceid", None), getattr(t, "key", None)
            return rid in ids and (not pairs or key in pairs)

        call.world.tags = [t for t in call.world.tags if not doomed(t)]
        return {"success": True}

    return JobPlan(run, "DELETE_TAGS", "deleting tags", call.account.id)


def persist_tags(
    world: World, ids: list[str], rtype: str, pairs: dict[str, str], account_id: str
) -> None:
    """TaggedResourceManagerImpl.createTags: key by key, resource by resource, one transaction.

    (resource, type, key) is unique, so a key the resource already has (or a resource named
    twice) fails with CloudRuntimeException's 530, and none of the call's tags stay.
    """
    taken = {(t.resourceid, t.resourcetype, t.key) for t in world.tags}
    staged: list[Tag] = []
    for key, value in pairs.items():
        for rid in ids:
            if (rid, rtype, key) in taken:
                raise ApiError(530, f"tag {key} already on {rtype} with id {rid}", CS_CLOUD_RUNTIME)
            taken.add((rid, rtype, key))
            staged.append(Tag(key, value, rtype, rid, account_id))
    world.tags.extend(staged)


def _tag_pairs(call: Call) -> dict[str, str]:
    return call.tag_filter()


@async_api(
    "deleteNetwork",
    "user.network.DeleteNetworkCmd",
    params=(
        Param("id", "uuid", True, "network", "the ID of the network"),
        Param("forced", "boolean", description="Force delete a network (root admin only)"),
    ),
    description="Deletes a network",
)
async def delete_network(call: Call) -> JobPlan:
    net = call.world.networks[call.req("id")]

    async def run() -> Json:
        call.world.networks.pop(net.id, None)
        return {"success": True}

    desc = f"Deleting network {net.id}"
    return JobPlan(run, "NETWORK.DELETE", desc, net.account_id, "Network", net.id, "Network")


@async_api(
    "deleteKubernetesCluster",
    "user.kubernetes.cluster.DeleteKubernetesClusterCmd",
    params=(
        Param("id", "uuid", True, "kubernetescluster", "the ID of the Kubernetes cluster"),
        Param("cleanup", "boolean", description="destroy resources (ExternalManaged only)"),
        Param("expunge", "boolean", description="expunge the VMs (ExternalManaged only)"),
    ),
    description="Deletes a Kubernetes cluster",
)
async def delete_kubernetes_cluster(call: Call) -> JobPlan:
    cluster = call.world.kubernetes[call.req("id")]

    async def run() -> Json:
        call.world.kubernetes.pop(cluster.id, None)
        return {"success": True}

    desc = f"Deleting Kubernetes cluster: {cluster.name}"
    return JobPlan(
        run,
        "KUBERNETES.CLUSTER.DELETE",
        desc,
        cluster.account_id,
        "KubernetesCluster",
        cluster.id,
        "KubernetesCluster",
    )
