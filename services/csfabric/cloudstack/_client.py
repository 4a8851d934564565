"""The async CloudStack API client every service acts through.

::

    async with CloudStackClient(settings, clock=clock, metrics=metrics) as cs:
        zones = await cs.list_zones()                      # typed, every page
        job = await cs.job("deployVirtualMachine", zoneid=..., templateid=..., ...)
        job.raise_for_status()                             # or read job.error

Transport: our own signed requests over an injectable ``aiohttp.ClientSession``, reusing
``cs``'s parameter encoding and checked against its signer; why not ``AIOCloudStack``
itself is explained in :mod:`csfabric.cloudstack._transport`.  One command, its retries,
spans and metrics are :class:`~csfabric.cloudstack._calls.SignedCalls` (what fails how is
told there); this class adds what is built from commands: every page of a list, a job
waited for, typed lists.  Any failure while :meth:`CloudStackClient.job` waits for a job
CloudStack accepted raises :class:`CloudStackOutcomeUnknown`: the job runs on without us.
"""

from __future__ import annotations

import builtins
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from csfabric.cloudstack._calls import SignedCalls
from csfabric.cloudstack._models import (
    Event,
    JobResult,
    Project,
    Snapshot,
    Tag,
    VirtualMachine,
    Volume,
    Zone,
)
from csfabric.cloudstack.errors import (
    CloudStackApiError,
    CloudStackJobTimeout,
    CloudStackOutcomeUnknown,
    CloudStackTransientError,
)
from csfabric.kernel import get_tracer

M = TypeVar("M", bound=BaseModel)


class CloudStackClient(SignedCalls):
    """Signed, rate-limited, traced calls to one CloudStack endpoint, and what they build."""

    async def list(self, command: str, **params: Any) -> builtins.list[dict[str, Any]]:
        """Every item of a ``list*`` command, page by page (``pagesize`` from settings)."""
        pagesize = int(params.pop("pagesize", self.settings.page_size))
        params.pop("page", None)
        items: builtins.list[dict[str, Any]] = []
        page = 1
        while True:
            answer = await self.call(command, page=page, pagesize=pagesize, **params)
            # The one list-valued key (``zone``, ``virtualmachine``...); none when empty.
            batch = next((v for v in answer.values() if isinstance(v, builtins.list)), [])
            items.extend(batch)
            count = answer.get("count")
            total = count if isinstance(count, int) else None
            if len(batch) < pagesize or (total is not None and len(items) >= total):
                return items
            page += 1

    async def job(self, command: str, **params: Any) -> JobResult:
        """Run an async command and wait for its job.

        A job that ran and failed (``jobstatus`` 2) is *returned* with ``error`` set; a
        command CloudStack refuses outright raises like :meth:`call`; a job still pending
        after ``job_timeout`` raises :class:`CloudStackJobTimeout`, and any other failure
        once CloudStack accepted the job raises :class:`CloudStackOutcomeUnknown`: the job
        runs on without us, so the caller must reconcile, not submit it again.
        """
        with get_tracer(__name__).start_as_current_span(
            f"cloudstack job {command}", attributes={"cloudstack.command": command}
        ) as span:
            started = await self.call(command, **params)
            jobid = started.get("jobid")
            resource_id = started.get("id")
            if not jobid:  # some commands answer synchronously after all
                return JobResult(
                    command=command,
                    jobid=None,
                    status="succeeded",
                    result=started,
                    resource_id=resource_id,
                )
            span.set_attribute("cloudstack.jobid", str(jobid))
            try:
                result = await self.wait_job(str(jobid), command=command, resource_id=resource_id)
            except CloudStackOutcomeUnknown:
                raise
            except (CloudStackTransientError, CloudStackApiError) as error:
                text = f"job {jobid} accepted, then {error.errortext}: outcome unknown"
                raise CloudStackOutcomeUnknown(command, error.errorcode, text) from error
            span.set_attribute("cloudstack.job_status", result.status)
            return result

    async def wait_job(
        self, jobid: str, *, command: str = "", resource_id: str | None = None
    ) -> JobResult:
        """Poll ``queryAsyncJobResult`` every ``poll_interval`` until done or ``job_timeout``."""
        s = self.settings
        deadline = self.clock.now() + timedelta(seconds=s.job_timeout)
        while True:
            answer = await self.call("queryAsyncJobResult", jobid=jobid)
            status = int(answer.get("jobstatus", 0))
            if status != 0:
                return JobResult.from_query(command, jobid, resource_id, answer)
            remaining = (deadline - self.clock.now()).total_seconds()
            if remaining <= 0:
                raise CloudStackJobTimeout(command or "queryAsyncJobResult", jobid, s.job_timeout)
            await self.clock.sleep(min(s.poll_interval, remaining))

    async def _typed(self, model: type[M], command: str, params: Any) -> builtins.list[M]:
        return [model.model_validate(item) for item in await self.list(command, **params)]

    async def list_zones(self, **params: Any) -> builtins.list[Zone]:
        return await self._typed(Zone, "listZones", params)

    async def list_volumes(self, **params: Any) -> builtins.list[Volume]:
        return await self._typed(Volume, "listVolumes", params)

    async def list_virtual_machines(self, **params: Any) -> builtins.list[VirtualMachine]:
        return await self._typed(VirtualMachine, "listVirtualMachines", params)

    async def list_snapshots(self, **params: Any) -> builtins.list[Snapshot]:
        return await self._typed(Snapshot, "listSnapshots", params)

    async def list_projects(self, **params: Any) -> builtins.list[Project]:
        return await self._typed(Project, "listProjects", params)

    async def list_tags(self, **params: Any) -> builtins.list[Tag]:
        return await self._typed(Tag, "listTags", params)

    async def list_events(self, **params: Any) -> builtins.list[Event]:
        return await self._typed(Event, "listEvents", params)


__all__ = ["CloudStackClient"]
