"""One run of every implemented command against a fresh simulator (in-process transport).

Shared by the contract tests and by the golden-file regeneration
(``CSFABRIC_REGEN_GOLDEN=1 .venv/bin/pytest tests/contract/test_simulator_api.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from csfabric.cloudstack.simulator import Simulator, World, signature

Json = dict[str, Any]


class Caller:
    def __init__(self, sim: Simulator, username: str = "admin") -> None:
        self.sim = sim
        self.keys = sim.keys()[username]

    async def raw(self, command: str, /, **params: Any) -> tuple[int, Json]:
        p = {k: str(v) for k, v in params.items()} | {"command": command, "response": "json"}
        p["apiKey"] = self.keys["apikey"]
        p["signature"] = signature(p, self.keys["secretkey"])
        return await self.sim.dispatch(p)

    async def __call__(self, command: str, /, **params: Any) -> Json:
        status, body = await self.raw(command, **params)
        assert status == 200, body
        return body

    async def job(self, command: str, /, **params: Any) -> tuple[Json, Json]:
        """(immediate response, completed queryAsyncJobResult response)."""
        first = await self(command, **params)
        jobid = first[f"{command.lower()}response"]["jobid"]
        for _ in range(500):
            done = await self("queryAsyncJobResult", jobid=jobid)
            if done["queryasyncjobresultresponse"]["jobstatus"] != 0:
                return first, done
            await asyncio.sleep(0.01)
        raise AssertionError(f"job {jobid} never finished")


async def run_all(sim: Simulator) -> dict[str, Json]:
    """command name → golden-shaped record {"response": ..., "queryAsyncJobResult": ...}."""
    w: World = sim.world
    call = Caller(sim)
    out: dict[str, Json] = {}
    london = w.zone_named("zone-london").id
    manchester = w.zone_named("zone-manchester").id
    proj = next(p for p in w.projects.values() if p.name == "project-alpha")
    gold_vol = next(v for v in w.volumes.values() if v.name == "ledger-db-data")

    async def sync(name: str, /, **p: Any) -> Json:
        out[name] = {"response": await call(name, **p)}
        return out[name]["response"]

    async def job(name: str, /, **p: Any) -> Json:
        first, done = await call.job(name, **p)
        out[name] = {"response": first, "queryAsyncJobResult": done}
        return done["queryasyncjobresultresponse"]["jobresult"]

    await sync("listZones")
    await sync("listServiceOfferings", name="Small Instance")
    await sync("listDiskOfferings", name="Small")
    await sync("listTemplates", templatefilter="executable", zoneid=manchester)
    await sync("listNetworks", zoneid=manchester)
    await sync("listDomains", id=w.root.id)
    await sync("listAccounts", name="admin")
    await sync("listApis", name="deployVirtualMachine")
    await sync("listPublicIpAddresses", listall="true")
    await sync("listPortForwardingRules")
    await sync("listIpForwardingRules")
    vm = (
        await job(
            "deployVirtualMachine",
            zoneid=london,
            serviceofferingid=w.service_offering_id,
            templateid=w.template_id,
            name="golden-vm",
        )
    )["virtualmachine"]
    await sync("listVirtualMachines", id=vm["id"])
    await job("attachVolume", id=gold_vol.id, virtualmachineid=vm["id"])
    await job("detachVolume", id=gold_vol.id)
    await sync("listVolumes", id=gold_vol.id)
    snap = (await job("createSnapshot", volumeid=gold_vol.id))["snapshot"]
    await sync("listSnapshots", id=snap["id"])
    await job("copySnapshot", id=snap["id"], destzoneids=manchester)
    policy = (
        await sync(
            "createSnapshotPolicy",
            volumeid=gold_vol.id,
            intervaltype="DAILY",
            maxsnaps=7,
            schedule="30:02",
            timezone="Europe/London",
        )
    )["createsnapshotpolicyresponse"]["snapshotpolicy"]
    await sync("listSnapshotPolicies", volumeid=gold_vol.id)
    await job("updateSnapshotPolicy", id=policy["id"], fordisplay="true")
    await sync("deleteSnapshotPolicies", id=policy["id"])
    vol = (await job("createVolume", snapshotid=snap["id"], zoneid=manchester))["volume"]
    await sync("deleteVolume", id=vol["id"])
    await job("deleteSnapshot", id=snap["id"])
    await job(
        "createTags",
        resourceids=vm["id"],
        resourcetype="UserVm",
        **{"tags[0].key": "csfabric:env", "tags[0].value": "golden"},
    )
    await sync("listTags", resourceid=vm["id"])
    await job(
        "deleteTags", resourceids=vm["id"], resourcetype="UserVm", **{"tags[0].key": "csfabric:env"}
    )
    await job("stopVirtualMachine", id=vm["id"])
    await job("startVirtualMachine", id=vm["id"])
    await sync("listAsyncJobs", listall="true", pagesize=1)
    await job("destroyVirtualMachine", id=vm["id"], expunge="true")
    await sync("listProjects", id=proj.id)
    await job("suspendProject", id=proj.id)
    await job("activateProject", id=proj.id)
    await sync("updateResourceLimit", projectid=proj.id, resourcetype=0, max=30)
    await sync("listResourceLimits", projectid=proj.id, resourcetype=0)
    net = next(n for n in w.networks.values() if n.name.startswith("ci-"))
    await job("deleteNetwork", id=net.id)
    cluster = w.add_kubernetes(london, proj.account_id)
    await job("deleteKubernetesCluster", id=cluster.id)
    beta = next(p for p in w.projects.values() if p.name == "project-beta")
    await job("deleteProject", id=beta.id, cleanup="true")
    await sync("listEvents", pagesize=1)
    out["queryAsyncJobResult"] = {"response": out["deployVirtualMachine"]["queryAsyncJobResult"]}
    return out
