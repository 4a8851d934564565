"""Lifecycle events other systems publish (CI pipelines, OpenTofu runs, portals).

Type ``<noun>.<verb>`` on ``csfabric.lifecycle.<type>``; the CloudEvent ``subject`` is the
thing's name or id (the environment's name, the window's id, the DR zone).  Keys are
camelCase like the policy documents; times are RFC 3339 with an offset and durations are
the fabric's (``4h``, ``7d``, ISO 8601 ``PT4H``).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from csfabric.events._base import EventTime, Payload
from csfabric.kernel import Duration

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
_ENV = "the environment's name, e.g. ci-1234 (its csfabric:env tag); the event's subject"
_WINDOW = "the maintenance window's id, the same in its scheduled/started/ended events"


class EnvironmentCreated(Payload):
    """``environment.created``: an environment exists and its lease starts now."""

    schema_stem = "environment-created"

    name: str = Field(pattern=_NAME, description=_ENV)
    ttl: Duration | None = Field(None, description="how long it may live from now")
    expires_at: EventTime | None = Field(
        None, alias="expiresAt", description="when it ends (instead of ttl)"
    )
    project: str | None = Field(None, description="CloudStack project uuid or name it lives in")
    owner: str | None = Field(None, description="who to tell before teardown (e-mail, user)")
    labels: dict[str, str] = Field(
        default_factory=dict, description="free-form tags, e.g. the pipeline id"
    )

    @model_validator(mode="after")
    def _one_end(self) -> EnvironmentCreated:
        if self.ttl is not None and self.expires_at is not None:
            raise ValueError("give ttl or expiresAt, not both")
        if self.ttl is not None and self.ttl <= timedelta(0):
            raise ValueError("ttl must be longer than 0s")
        return self


class EnvironmentExtended(Payload):
    """``environment.extended``: the lease is longer (by ``ttl`` from now, or to ``expiresAt``)."""

    schema_stem = "environment-extended"

    name: str = Field(pattern=_NAME, description=_ENV)
    ttl: Duration | None = Field(None, description="the new lifetime, counted from now")
    expires_at: EventTime | None = Field(None, alias="expiresAt", description="the new end")
    reason: str | None = None

    @model_validator(mode="after")
    def _exactly_one_end(self) -> EnvironmentExtended:
        if (self.ttl is None) == (self.expires_at is None):
            raise ValueError("give exactly one of ttl or expiresAt")
        if self.ttl is not None and self.ttl <= timedelta(0):
            raise ValueError("ttl must be longer than 0s")
        return self


class EnvironmentReleased(Payload):
    """``environment.released``: the owner is done (the pipeline's stop job); tear it down."""

    schema_stem = "environment-released"

    name: str = Field(pattern=_NAME, description=_ENV)
    reason: str | None = None


class MaintenanceScheduled(Payload):
    """``maintenance.scheduled``: a window is announced; no failover or teardown inside it
    unless the policy says otherwise."""

    schema_stem = "maintenance-scheduled"

    id: str = Field(pattern=_NAME, description=_WINDOW)
    start: EventTime
    end: EventTime
    zones: list[str] = Field(
        default_factory=list, description="zone uuids or names it covers; empty: every zone"
    )
    resources: list[str] = Field(
        default_factory=list, description="resource uuids it covers (hosts, VMs, …)"
    )
    description: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceScheduled:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class MaintenanceStarted(Payload):
    """``maintenance.started``: the window is open now (it may start early or late)."""

    schema_stem = "maintenance-started"

    id: str = Field(pattern=_NAME, description=_WINDOW)
    end: EventTime | None = Field(None, description="a changed end, if it moved")


class MaintenanceEnded(Payload):
    """``maintenance.ended``: the window is closed; held work may go ahead."""

    schema_stem = "maintenance-ended"

    id: str = Field(pattern=_NAME, description=_WINDOW)


class DrDrillRequested(Payload):
    """``dr.drill.requested``: run the recovery plan for a zone, measure it, clean up."""

    schema_stem = "dr-drill-requested"

    zone: str = Field(min_length=1, description="the DR zone to recover into; the subject")
    policy: str | None = Field(None, description="SnapshotPolicy whose copies to use; all if unset")
    cleanup: bool = Field(True, description="remove what the drill made once measured")
    requested_by: str | None = Field(None, alias="requestedBy")


# CloudEvent type → payload model: the lifecycle catalogue.
LIFECYCLE: dict[str, type[Payload]] = {
    "environment.created": EnvironmentCreated,
    "environment.extended": EnvironmentExtended,
    "environment.released": EnvironmentReleased,
    "maintenance.scheduled": MaintenanceScheduled,
    "maintenance.started": MaintenanceStarted,
    "maintenance.ended": MaintenanceEnded,
    "dr.drill.requested": DrDrillRequested,
}

__all__ = [
    "LIFECYCLE",
    "DrDrillRequested",
    "EnvironmentCreated",
    "EnvironmentExtended",
    "EnvironmentReleased",
    "MaintenanceEnded",
    "MaintenanceScheduled",
    "MaintenanceStarted",
]
