"""The rows a recovery plan is made of: what it reads from the cloud, and the steps it answers.

Plain frozen dataclasses, built by whoever lists the cloud (``csfabric dr``), read by
:func:`csfabric.dr.plan`; ``params`` of a step are the CloudStack call's own parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from csfabric.dr._policy import VolumeRef
from csfabric.dr._rules import Copy


@dataclass(frozen=True)
class PlanVm:
    """A VM as ``listVirtualMachines`` shows it (the fields a redeploy needs)."""

    id: str
    name: str
    zone_id: str
    service_offering_id: str | None
    service_offering_name: str | None
    template_id: str | None
    template_name: str | None
    network_ids: tuple[str, ...] = ()
    network_names: tuple[str, ...] = ()
    account: str | None = None
    domain_id: str | None = None
    project_id: str | None = None


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    zone_id: str | None  # None: cross-zone


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    zone_id: str
    account: str | None = None
    project_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    type: str | None = None  # Isolated | Shared | L2


@dataclass(frozen=True)
class Offering:
    id: str
    name: str
    zone_ids: tuple[str, ...] = ()  # empty: every zone


@dataclass(frozen=True)
class SnapshotVolume:
    """A volume as its snapshot rows remember it (``volumename``, owner): what is left to
    know of a volume ``listVolumes`` no longer shows, e.g. when its zone is gone."""

    name: str
    type: str = "DATADISK"
    account: str | None = None
    domain_id: str | None = None
    project_id: str | None = None


@dataclass(frozen=True)
class Inventory:
    """Everything the plan reads; ``None`` marks a listing the cloud could not give."""

    dr_zone_id: str
    dr_zone_name: str
    volumes: Sequence[VolumeRef]
    vms: Mapping[str, PlanVm]
    dr_copies: Sequence[Copy]  # rows of listSnapshots zoneid=<DR zone>
    templates: Sequence[Template] | None = None
    networks: Sequence[Network] | None = None
    offerings: Sequence[Offering] | None = None
    # volume id → owner's domain id (VolumeRef carries the domain's path, an admin acting
    # for the owner passes account + domainid)
    domain_ids: Mapping[str, str] = field(default_factory=dict)
    # volume id → what the DR copies' rows say of it, for volumes listVolumes lacks
    snapshot_volumes: Mapping[str, SnapshotVolume] = field(default_factory=dict)


@dataclass(frozen=True)
class RestoreVolume:
    volume_id: str
    volume_name: str
    volume_type: str
    policy: str
    snapshot_id: str
    snapshot_created: datetime
    data_age_s: float  # what this restore loses: now - the copy's creation
    params: dict[str, str]  # createVolume's parameters

    @property
    def command(self) -> str:
        return "createVolume"


@dataclass(frozen=True)
class RedeployVm:
    vm_id: str
    vm_name: str
    params: dict[str, str]  # deployVirtualMachine's parameters
    attach: tuple[str, ...]  # source volume ids whose restored copies are attached, in order
    notes: tuple[str, ...] = ()

    @property
    def command(self) -> str:
        return "deployVirtualMachine"


@dataclass(frozen=True)
class Blocked:
    kind: str  # "volume" | "vm"
    id: str
    name: str
    reason: str


@dataclass(frozen=True)
class RecoveryPlan:
    zone_id: str
    zone_name: str
    at: datetime
    policies: tuple[str, ...]
    volumes: tuple[RestoreVolume, ...]
    vms: tuple[RedeployVm, ...]
    blocked: tuple[Blocked, ...]
    notes: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.blocked


__all__ = [
    "Blocked",
    "Inventory",
    "Network",
    "Offering",
    "PlanVm",
    "RecoveryPlan",
    "RedeployVm",
    "RestoreVolume",
    "SnapshotVolume",
    "Template",
]
