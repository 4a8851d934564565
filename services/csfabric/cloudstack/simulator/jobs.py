"""Async jobs: submitted at once, completed after ``job_latency`` seconds of fabric time.

Events follow CloudStack's ActionEventInterceptor: ``Scheduled`` when the job is queued,
``Started`` when it runs, ``Completed`` at the end — also on failure, where only the
description says so ("Error while ...").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from .call import Call, cs_date
from .emit import Emitter
from .errors import ApiError
from .registry import Command, JobPlan
from .state import AsyncJob
from .world import World

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
        await self._event(call, plan, "Scheduled", f"{plan.description}")
        task = asyncio.create_task(self._run(job, call, plan))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if plan.returns_id and plan.entity_uuid:
            return {"id": plan.entity_uuid, "jobid": job.id}
        return {"jobid": job.id}

    async def _event(self, call: Call, plan: JobPlan, status: str, description: str) -> None:
        await self.emitter.action(
            plan.event,
            status,
            description,
            user_id=call.user.id,
            account_id=plan.owner_account_id,
            entity=plan.entity,
            entity_uuid=plan.entity_uuid,
        )

    async def _run(self, job: AsyncJob, call: Call, plan: JobPlan) -> None:
        await self.emitter.clock.sleep(self.latency)
        await self._event(call, plan, "Started", f"Starting job for {plan.description}")
        try:
            result = await plan.run()
        except ApiError as err:
            job.status, job.resultcode = 2, err.errorcode
            job.result = {"errorcode": err.errorcode, "errortext": err.errortext}
            description = f"Error while {plan.description[0].lower()}{plan.description[1:]}"
        except Exception as exc:  # keep the job answerable, like CloudStack's 530
            log.exception("job %s failed", job.id)
            job.status, job.resultcode = 2, 530
            job.result = {"errorcode": 530, "errortext": str(exc) or "Internal error"}
            description = f"Error while {plan.description[0].lower()}{plan.description[1:]}"
        else:
            job.status, job.result = 1, result
            description = f"Successfully completed {plan.description[0].lower()}"
            description += plan.description[1:]
        job.completed = self.emitter.now()
        await self._event(call, plan, "Completed", description)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def render_job(job: AsyncJob) -> dict[str, Any]:
    """AsyncJobResponse, in CloudStack's key order."""
    out: dict[str, Any] = {
        "accountid": job.account_id,
        "userid": job.user_id,
        "cmd": job.cmd,
        "jobstatus": job.status,
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
    out["jobid"] = job.id
    return out
