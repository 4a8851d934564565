"""Typed views of CloudStack API objects, as ``response=json`` returns them.

Field names are CloudStack's own (all lowercase, e.g. ``zonename``, ``virtualmachineid``).
Only the fields the fabric reads are declared, with their types; everything else is kept
(``extra="allow"``) so nothing the server sends is lost, and a newer CloudStack that adds
fields still parses.  Timestamps such as ``2024-11-28T09:15:00+0100`` become aware
datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from csfabric.cloudstack._transport import classify


class CloudStackObject(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Tag(CloudStackObject):
    key: str
    value: str
    resourcetype: str | None = None
    resourceid: str | None = None
    account: str | None = None
    domain: str | None = None
    domainid: str | None = None
    project: str | None = None
    projectid: str | None = None


class Tagged(CloudStackObject):
    """An object that carries ``tags``; :meth:`tag` reads one by key."""

    tags: list[Tag] = Field(default_factory=list)

    def tag(self, key: str) -> str | None:
        return next((t.value for t in self.tags if t.key == key), None)


class Zone(Tagged):
    id: str
    name: str
    allocationstate: str | None = None
    networktype: str | None = None
    description: str | None = None
    localstorageenabled: bool | None = None
    securitygroupsenabled: bool | None = None


class Owned(Tagged):
    """Fields every account- or project-owned resource has."""

    account: str | None = None
    domain: str | None = None
    domainid: str | None = None
    project: str | None = None
    projectid: str | None = None
    created: datetime | None = None


class VirtualMachine(Owned):
    id: str
    name: str
    displayname: str | None = None
    state: str
    zoneid: str | None = None
    zonename: str | None = None
    templateid: str | None = None
    serviceofferingid: str | None = None
    cpunumber: int | None = None
    memory: int | None = None
    haenable: bool | None = None
    nic: list[dict[str, Any]] = Field(default_factory=list)


class Volume(Owned):
    id: str
    name: str
    type: str | None = None  # ROOT | DATADISK
    state: str | None = None
    size: int | None = None
    zoneid: str | None = None
    zonename: str | None = None
    virtualmachineid: str | None = None
    vmname: str | None = None
    diskofferingid: str | None = None
    storagetype: str | None = None


class Snapshot(Owned):
    id: str
    name: str | None = None
    state: str | None = None
    volumeid: str | None = None
    volumename: str | None = None
    volumetype: str | None = None
    snapshottype: str | None = None
    intervaltype: str | None = None
    zoneid: str | None = None
    physicalsize: int | None = None
    virtualsize: int | None = None
    revertable: bool | None = None


class Project(Tagged):
    id: str
    name: str
    displaytext: str | None = None
    state: str | None = None
    domain: str | None = None
    domainid: str | None = None
    account: str | None = None
    created: datetime | None = None


class Event(CloudStackObject):
    """A row of ``listEvents`` (the stored form of an ActionEvent)."""

    id: str
    type: str
    level: str | None = None
    state: str | None = None
    description: str | None = None
    created: datetime | None = None
    username: str | None = None
    account: str | None = None
    domain: str | None = None
    domainid: str | None = None
    project: str | None = None
    projectid: str | None = None
    resourceid: str | None = None
    resourcetype: str | None = None
    parentid: str | None = None


class JobError(CloudStackObject):
    """The ``jobresult`` of a failed job."""

    errorcode: int
    errortext: str = ""
    cserrorcode: int | None = None


class JobResult(CloudStackObject):
    """The outcome of an async command, after ``queryAsyncJobResult`` said it is done.

    A failed job is *returned*, not raised: the caller decides (audit records want the
    error as data).  :meth:`raise_for_status` turns it into the classified error.
    """

    command: str
    jobid: str | None
    status: Literal["succeeded", "failed"]
    resource_id: str | None = None  # the ``id`` the async command answered with
    result: dict[str, Any] = Field(default_factory=dict)  # ``jobresult`` as sent
    error: JobError | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def payload(self) -> dict[str, Any] | None:
        """The object in ``jobresult`` (e.g. the deployed VM), when it holds exactly one."""
        values = [v for v in self.result.values() if isinstance(v, dict)]
        return values[0] if len(values) == 1 else None

    @classmethod
    def from_query(
        cls, command: str, jobid: str, resource_id: str | None, answer: dict[str, Any]
    ) -> JobResult:
        """From a finished ``queryAsyncJobResult`` answer (``jobstatus`` 1 or 2)."""
        result = answer.get("jobresult")
        result = result if isinstance(result, dict) else {}
        resource_id = resource_id or answer.get("jobinstanceid")
        if int(answer.get("jobstatus", 0)) == 1:
            return cls(
                command=command,
                jobid=jobid,
                status="succeeded",
                result=result,
                resource_id=resource_id,
            )
        error = JobError(
            errorcode=int(result.get("errorcode", 530)),
            errortext=str(result.get("errortext", "")),
            cserrorcode=result.get("cserrorcode"),
        )
        return cls(
            command=command,
            jobid=jobid,
            status="failed",
            result=result,
            resource_id=resource_id,
            error=error,
        )

    def raise_for_status(self) -> JobResult:
        """``self`` when it succeeded; else the job's error, classified like a call's."""
        if self.error is None:
            return self
        raise classify(
            self.command, self.error.errorcode, self.error.errortext, self.error.cserrorcode
        )


__all__ = [
    "CloudStackObject",
    "Event",
    "JobError",
    "JobResult",
    "Project",
    "Snapshot",
    "Tag",
    "VirtualMachine",
    "Volume",
    "Zone",
]
