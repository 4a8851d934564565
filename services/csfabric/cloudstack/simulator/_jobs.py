"""Async jobs: submitted at once, completed after ``job_latency`` seconds of fabric time.

Events follow CloudStack's ApiServer + ActionEventInterceptor + ActionEventUtils: a create
command (BaseAsyncCreateCmd: deploy VM, create volume/snapshot) first records ``Created``
("Successfully created entity for <create description>"); then ``Scheduled`` when the job
is queued, ``Started`` when it runs (the description with a capital first letter), and
``Completed`` at the end — also on failure, with level ERROR and "Error while ...".  Every
event after the first carries the first one's id as its ``startId`` (listEvents'
``parentid``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from csfabric.cloudstack.simulator._call import Call, cs_date
from csfabric.cloudstack.simulator._emit import Emitter
from csfabric.cloudstack.simulator._errors import CS_CLOUD_RUNTIME, ApiError
from csfabric.cloudstack.simulator._registry import Command, JobPlan
from csfabric.cloudstack.simulator._state import AsyncJob
from csfabric.cloudstack.simulator._world import World

# @ActionEvent(create = true) descriptions of the create phase, by event type.
_CREATE_PHASE = {
    "VM.CREATE": "deploying Vm",
    "VOLUME.CREATE": "creating volume",
    "SNAPSHOT.CREATE": "allocating snapshot",
}

log = logging.getLogger("csfabric.simulator.jobs")


class JobRunner:
    def __init__(self, world: World, emitter: Emitter, latency: float) -> None:
        self.world = world
        self.emitter = emitter
        self.latency = latency
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, cmd: Command, call: Call, plan: JobPlan) -> dict[str, Any]:
        job = AsyncJob(
            self.world.new_id("job"),
            cmd.cmd_class,
            call.account.id,
            call.user.id,
            self.emitter.now(),
            instancetype=plan.instancetype,
            instanceid=plan.entity_uuid,
        )
        self.world.jobs[job.id] = job
        start: str | None = None
        if plan.returns_id and plan.event in _CREATE_PHASE:
            created = f"Successfully created entity for {_CREATE_PHASE[plan.event]}"
            start = await self._event(call, plan, "Created", created)
        scheduled = await self._event(call, plan, "Scheduled", plan.description, start)
        # ApiServer: without a create event, the Scheduled event starts the chain.
        task = asyncio.create_task(self._run(job, call, plan, start or scheduled))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if plan.returns_id and plan.entity_uuid:
            return {"id": plan.entity_uuid, "jobid": job.id}
        return {"jobid": job.id}

    async def _event(
        self,
        call: Call,
        plan: JobPlan,
        status: str,
        description: str,
        parent: str | None = None,
        level: str = "INFO",
    ) -> str:
        native_event = await self.emitter.action(
            plan.event,
            status,
            description,
            user_id=call.user.id,
            account_id=plan.owner_account_id,
            entity=plan.entity,
            entity_uuid=plan.entity_uuid,
            parent=parent,
            level=level,
        )
        return native_event.event_id

    async def _run(self, job: AsyncJob, call: Call, plan: JobPlan, start: str) -> None:
        await self.emitter.clock.sleep(self.latency)
        started = plan.description[:1].upper() + plan.description[1:]
        await self._event(call, plan, "Started", started, start)
        level = "ERROR"
        try:
            result = await plan.run()
        except ApiError as err:
            job.status, job.resultcode = 2, err.errorcode
            job.result = err.body()  # ExceptionResponse: uuidList, errorcode, cserrorcode, …
            description = f"Error while {plan.description[0].lower()}{plan.description[1:]}"
        except Exception as exc:  # keep the job answerable, like CloudStack's 530
            log.exception("job %s failed", job.id)
            job.status, job.resultcode = 2, 530
            job.result = ApiError(530, str(exc) or "Internal error", CS_CLOUD_RUNTIME).body()
            description = f"Error while {plan.description[0].lower()}{plan.description[1:]}"
        else:
            job.status, job.result, level = 1, result, "INFO"
            description = f"Successfully completed {plan.description[0].lower()}"
            description += plan.description[1:]
        job.completed = self.emitter.now()
        await self._event(call, plan, "Completed", description, start, level)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def render_job(job: AsyncJob, world: World) -> dict[str, Any]:
    """AsyncJobResponse (+ BaseResponse's jobid/jobstatus), in CloudStack's field order.

    ``managementserverid``/``managementservername`` are left out: the simulator has no
    management-server host record to name.
    """
    acct = world.accounts[job.account_id]
    dom = world.domains[acct.domainid]
    out: dict[str, Any] = {
        "accountid": job.account_id,
        "account": acct.name,
        "domainid": dom.id,
        "domainpath": dom.path,
        "userid": job.user_id,
        "cmd": job.cmd,
        "jobprocstatus": 0,
        "jobresultcode": job.resultcode,
    }
    if job.result is not None:
        out["jobresulttype"] = "object"
        out["jobresult"] = job.result
    if job.instancetype:
        out["jobinstancetype"] = job.instancetype
    if job.instanceid:
        out["jobinstanceid"] = job.instanceid
    out["created"] = cs_date(job.created)
    if job.completed:
        out["completed"] = cs_date(job.completed)
    out |= {"jobid": job.id, "jobstatus": job.status}  # Gson writes superclass fields last
    return out
