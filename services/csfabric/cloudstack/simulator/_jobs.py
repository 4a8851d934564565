"""Async jobs: submitted at once, completed after ``job_latency`` seconds of fabric time.

Events follow CloudStack's ApiServer + ActionEventInterceptor + ActionEventUtils: a create
command (BaseAsyncCreateCmd: deploy VM, create volume/snapshot) first records ``Created``
("Successfully created entity for <create description>"); then ``Scheduled`` when the job
is queued (the command's getEventDescription).  The job itself emits nothing of its own:
ApiAsyncJobDispatcher only runs the command, so ``Started`` exists only where the service
method the command calls is ``@ActionEvent(async = true)`` (ActionEventInterceptor's
interceptStart: deleting a snapshot, taking one, suspending a project) and not where it is
synchronous (copySnapshot, createTags, deleteTags).  ``Completed`` ("Successfully completed
<the method's description>[. <details the command set>]", or level ERROR "Error while
...") ends every job.  Every event after the first carries the first one's id as its
``startId`` (listEvents' ``parentid``).

Which account an event carries (ActionEventUtils.getOwnerAccountId): the project's
account when the call context has a project, else the resource owner's for ``Scheduled``
and the caller's for the rest.  ApiServlet puts a project in the request thread's context
when the request carries ``projectid`` or is a project command (suspend/activate/update/
deleteProject: their ``id``); the job thread's context gets one from ``projectid``
(ApiDispatcher.dispatch), or from the service method itself (suspending and activating a
project set it after Started, so their Completed has the project's account and their
Started the caller's).  PROJECT.CREATE/UPDATE/DELETE never take the project's account.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
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

Details = Callable[[World, "str | None"], "str | None"]


def _no_details(world: World, uuid: str | None) -> str | None:
    return None


@dataclass(frozen=True)
class Execution:
    """The service method a job runs: its ``@ActionEvent`` description, whether it is
    ``async`` (then it records ``Started``), and the details its command adds
    (``CallContext.setEventDetails``) to the Started/Completed descriptions."""

    description: str
    started: bool
    details: Details = _no_details
    # The method puts its project in the call context (ProjectManagerImpl's suspend/
    # activate): after Started is recorded, so only Completed takes the project's account.
    sets_project: bool = False


def _db_detail(label: str) -> Details:
    # Commands that set details from their Long id field: the internal id, not the uuid.
    return lambda world, uuid: f"{label}: {world.db_id(uuid)}" if uuid else None


def _volume_detail(world: World, uuid: str | None) -> str | None:
    vol = world.volumes.get(uuid or "")
    snap = f" from snapshot: {vol.snapshotid}" if vol is not None and vol.snapshotid else ""
    return f"Volume Id: {uuid}{snap}"


# By event type, for the commands whose service methods were read (SnapshotManagerImpl,
# VolumeApiServiceImpl, ProjectManagerImpl, NetworkServiceImpl, TaggedResourceManagerImpl).
# Others keep the generic shape: Started and Completed worded after the Scheduled text.
EXECUTIONS: dict[str, Execution] = {
    "SNAPSHOT.CREATE": Execution("taking snapshot", True),
    "SNAPSHOT.DELETE": Execution("deleting snapshot", True, lambda w, u: f"Snapshot Id: {u}"),
    "VOLUME.CREATE": Execution("creating volume", True, _volume_detail),
    "PROJECT.SUSPEND": Execution("suspending project", True, _db_detail("Project Id"), True),
    "PROJECT.ACTIVATE": Execution("activating project", True, _db_detail("Project id"), True),
    "PROJECT.DELETE": Execution("deleting project", True, _db_detail("Project Id")),
    "NETWORK.DELETE": Execution("deleting network", True, _db_detail("Network Id")),
    "CREATE_TAGS": Execution("creating resource tags", False),
    "DELETE_TAGS": Execution("deleting resource tags", False),
}
# copySnapshot's details are its own getEventDescription (CopySnapshotCmd.execute).
EXECUTIONS["SNAPSHOT.COPY"] = Execution("copying snapshot", False)
_PROJECT_COMMANDS = {"suspendProject", "activateProject", "updateProject", "deleteProject"}
_MAIN_PROJECT_EVENTS = {"PROJECT.CREATE", "PROJECT.UPDATE", "PROJECT.DELETE"}


def _project_account(call: Call, *, job_thread: bool) -> str | None:
    """The account of the call context's project (see the module docstring), or None."""
    w = call.world
    uuid = call.get("projectid")
    if uuid is None and not job_thread and call.command in _PROJECT_COMMANDS:
        uuid = call.get("id")
    proj = w.projects.get(uuid or "")
    return proj.account_id if proj is not None else None


def event_account(call: Call, event: str, default: str, *, job_thread: bool) -> str:
    """ActionEventUtils.getOwnerAccountId: the context project's account, else ``default``."""
    if event.upper() in _MAIN_PROJECT_EVENTS:
        return default
    return _project_account(call, job_thread=job_thread) or default


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
            caller = event_account(call, plan.event, call.account.id, job_thread=False)
            start = await self._event(call, plan, "Created", created, account_id=caller)
        owner = event_account(call, plan.event, plan.owner_account_id, job_thread=False)
        scheduled = await self._event(
            call, plan, "Scheduled", plan.description, start, account_id=owner
        )
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
        *,
        account_id: str,
    ) -> str:
        native_event = await self.emitter.action(
            plan.event,
            status,
            description,
            user_id=call.user.id,
            account_id=account_id,
            entity=plan.entity,
            entity_uuid=plan.entity_uuid,
            parent=parent,
            level=level,
        )
        return native_event.event_id

    async def _run(self, job: AsyncJob, call: Call, plan: JobPlan, start: str) -> None:
        await self.emitter.clock.sleep(self.latency)
        account = event_account(call, plan.event, call.account.id, job_thread=True)
        execution = EXECUTIONS.get(plan.event)
        if execution is None:  # generic: worded after the Scheduled description
            what = plan.description[:1].lower() + plan.description[1:]
            started: str | None = plan.description[:1].upper() + plan.description[1:]
        else:
            what = execution.description
            details = execution.details(self.world, plan.entity_uuid)
            if plan.event == "SNAPSHOT.COPY":
                details = plan.description
            what += f". {details}" if details else ""
            started = what[:1].upper() + what[1:] if execution.started else None
        if started is not None:
            await self._event(call, plan, "Started", started, start, account_id=account)
        if execution is not None and execution.sets_project:
            proj = self.world.projects.get(plan.entity_uuid or "")
            account = proj.account_id if proj is not None else account
        level = "ERROR"
        try:
            result = await plan.run()
        except ApiError as err:
            job.status, job.resultcode = 2, err.errorcode
            job.result = err.job_body()
            description = f"Error while {what}"
        except Exception as exc:  # keep the job answerable, like CloudStack's 530
            log.exception("job %s failed", job.id)
            job.status, job.resultcode = 2, 530
            job.result = ApiError(530, str(exc) or "Internal error", CS_CLOUD_RUNTIME).job_body()
            description = f"Error while {what}"
        else:
            job.status, job.result, level = 1, result, "INFO"
            description = f"Successfully completed {what}"
        job.completed = self.emitter.now()
        await self._event(call, plan, "Completed", description, start, level, account_id=account)

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
