"""Zones, async-job results, events, tags, networks and Kubernetes clusters."""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json, cs_date, render_tag
from csfabric.cloudstack.simulator._errors import not_found
from csfabric.cloudstack.simulator._jobs import render_job
from csfabric.cloudstack.simulator._registry import JobPlan, api, async_api
from csfabric.cloudstack.simulator._state import EventRecord, Zone

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


@api("listZones", "user.zone.ListZonesCmd")
async def list_zones(call: Call) -> Json:
    zones = list(call.world.zones.values())
    if (zid := call.get("id")) is not None:
        zones = [z for z in zones if z.id == zid]
    if (name := call.get("name")) is not None:
        zones = [z for z in zones if z.name == name]
    return call.list_response("zone", zones, render_zone)


@api("queryAsyncJobResult", "user.job.QueryAsyncJobResultCmd", required=("jobid",))
async def query_async_job_result(call: Call) -> Json:
    jobid = call.req("jobid")
    job = call.world.jobs.get(jobid)
    if job is None:
        raise not_found("async job", jobid)
    return render_job(job, call.world)


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


@api("listEvents", "user.event.ListEventsCmd")
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


@api("listTags", "user.tag.ListTagsCmd")
async def list_tags(call: Call) -> Json:
    tags = call.owned(call.world.tags, lambda t: t.account_id)
    for field in ("key", "value", "resourceid"):
        if (want := call.get(field)) is not None:
            tags = [t for t in tags if getattr(t, field) == want]
    if (rtype := call.get("resourcetype")) is not None:
        tags = [t for t in tags if t.resourcetype.lower() == rtype.lower()]
    return call.list_response("tag", tags, lambda t: render_tag(call.world, t))


@async_api("createTags", "user.tag.CreateTagsCmd", required=("resourceids", "resourcetype"))
async def create_tags(call: Call) -> JobPlan:
    from csfabric.cloudstack.simulator._state import Tag

    rtype = _KINDS.get(call.req("resourcetype").lower(), call.req("resourcetype"))
    ids = call.req("resourceids").split(",")
    pairs = _tag_pairs(call)

    async def run() -> Json:
        for rid in ids:
            for key, value in pairs.items():
                call.world.tags = [
                    t for t in call.world.tags if not (t.resourceid == rid and t.key == key)
                ]
                call.world.tags.append(Tag(key, value, rtype, rid, call.account.id))
        return {"success": True}

    return JobPlan(run, "CREATE_TAGS", "creating tags", call.account.id)


@async_api("deleteTags", "user.tag.DeleteTagsCmd", required=("resourceids", "resourcetype"))
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


def _tag_pairs(call: Call) -> dict[str, str]:
    return call.tag_filter()


@async_api("deleteNetwork", "user.network.DeleteNetworkCmd", required=("id",))
async def delete_network(call: Call) -> JobPlan:
    net = call.world.networks.get(call.req("id"))
    if net is None:
        raise not_found("network", call.req("id"))

    async def run() -> Json:
        call.world.networks.pop(net.id, None)
        return {"success": True}

    desc = f"Deleting network {net.id}"
    return JobPlan(run, "NETWORK.DELETE", desc, net.account_id, "Network", net.id, "Network")


@async_api(
    "deleteKubernetesCluster",
    "user.kubernetes.cluster.DeleteKubernetesClusterCmd",
    required=("id",),
)
async def delete_kubernetes_cluster(call: Call) -> JobPlan:
    cluster = call.world.kubernetes.get(call.req("id"))
    if cluster is None:
        raise not_found("Kubernetes cluster", call.req("id"))

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
