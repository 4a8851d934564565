"""The ``SnapshotPolicy`` kind: which volumes, how often, how long kept, copied where, what RPO.

Read by two services (``snapshots`` makes and retires snapshots, ``replication`` confirms the
DR copies and watches the RPO) and by ``csfabric dr``; that is why it lives here, below the
services, and not in either of them.

::

    apiVersion: csfabric/v1
    kind: SnapshotPolicy
    metadata: {name: gold-15m}
    spec:
      selector: {zone: zone-london, tags: {csfabric:dr-tier: gold}}
      every: 10m
      timezone: Europe/London
      retain: {count: 144, maxAge: 7d}
      copyTo: [zone-manchester]
      rpo: 15m
      jitter: 30s
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from csfabric.kernel import Duration
from csfabric.kernel.policy import PolicyBase, ResourceRef

KIND = "SnapshotPolicy"
VolumeType = Literal["ROOT", "DATADISK"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    model_config["alias_generator"] = to_camel


class Selector(_Spec):
    """The volumes a policy covers: every given criterion must hold (names as CloudStack shows
    them; ``zone`` is the primary zone's name or id)."""

    zone: str = Field(description="the primary zone, by name or id")
    tags: dict[str, str] = Field(default_factory=dict, description="volume tags, all must match")
    domain: str | None = Field(None, description="domain path; matches its subtree")
    account: str | None = None
    project: str | None = None
    volume_type: VolumeType | None = None


class Retain(_Spec):
    """How many of the policy's own snapshots to keep per zone, and for how long."""

    count: int = Field(ge=1, le=100_000)
    max_age: Duration | None = None


class SnapshotPolicy(PolicyBase):
    """Volume snapshots every ``every``, copied to ``copyTo``, kept per ``retain``."""

    selector: Selector
    every: Duration = Field(description="window length; windows align to the timezone's clock")
    timezone: str = Field("UTC", description="IANA zone whose clock the windows align to")
    retain: Retain
    copy_to: list[str] = Field(default_factory=list, description="DR zones (names or ids)")
    rpo: Duration = Field(description="recovery point objective, measured in the DR zone")
    jitter: Duration = Field(
        timedelta(0), description="snapshots are spread over this much of each window"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone",
                "unknown time zone {tz}: expected an IANA name like Europe/London",
                {"tz": repr(value)},
            ) from None
        return value

    @model_validator(mode="after")
    def _sane(self) -> SnapshotPolicy:
        if self.every < timedelta(minutes=1):
            raise PydanticCustomError("every", "every must be at least 1m")
        if self.jitter >= self.every:
            raise PydanticCustomError("jitter", "jitter must be shorter than every")
        if self.selector.zone in self.copy_to:
            raise PydanticCustomError("copy_to", "copyTo names the primary zone itself")
        return self

    @property
    def zones(self) -> list[str]:
        """Every zone the policy keeps snapshots in: the primary first, then the DR zones."""
        return [self.selector.zone, *self.copy_to]

    @property
    def dr_zone(self) -> str:
        """Where the achieved RPO is measured: the first ``copyTo`` zone, else the primary."""
        return self.copy_to[0] if self.copy_to else self.selector.zone

    def selects(self, volume: VolumeRef) -> bool:
        """In the selector, in the scope and not protected (the tag rule of every kind)."""
        s = self.selector
        if s.zone not in (volume.zone_id, volume.zone_name):
            return False
        if s.volume_type is not None and volume.type != s.volume_type:
            return False
        if any(volume.tags.get(k) != v for k, v in s.tags.items()):
            return False
        if s.domain is not None:
            path = volume.domain_path or ""
            if not (path == s.domain or path.startswith(s.domain + "/")):
                return False
        if s.account is not None and volume.account != s.account:
            return False
        if s.project is not None and volume.project != s.project:
            return False
        return self.applies_to(volume.ref)


class VolumeRef(BaseModel):
    """What the policy needs of a volume (taken from ``listVolumes`` or its events)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    zone_id: str
    zone_name: str | None = None
    type: str = "DATADISK"
    account: str | None = None
    project: str | None = None
    project_id: str | None = None
    domain_path: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    virtualmachine_id: str | None = None

    @property
    def ref(self) -> ResourceRef:
        return ResourceRef(self.name, self.domain_path, self.account, self.project, dict(self.tags))


__all__ = ["KIND", "Retain", "Selector", "SnapshotPolicy", "VolumeRef"]
