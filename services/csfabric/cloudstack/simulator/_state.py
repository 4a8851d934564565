"""The simulator's in-memory cloud: plain records, no behaviour.

Records keep CloudStack's own vocabulary (``accounttype`` 0 user / 1 admin / 2 domain admin,
resource-limit ``resourcetype`` numbers) so rendering a response is a field copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Zone:
    id: str
    name: str
    description: str
    dns1: str = "10.147.28.6"
    internaldns1: str = "10.147.28.6"
    guestcidraddress: str = "10.1.1.0/24"


@dataclass
class Domain:
    id: str
    name: str
    path: str  # "ROOT/gov-sandbox/fintech-projects"
    parentid: str | None
    level: int


@dataclass
class User:
    id: str
    username: str
    apikey: str
    secretkey: str


@dataclass
class Account:
    id: str
    name: str
    accounttype: int
    roletype: str
    domainid: str
    users: list[User] = field(default_factory=list)
    project_id: str | None = None  # set for a project's own hidden account


@dataclass
class Project:
    id: str
    name: str
    displaytext: str
    domainid: str
    owner: str  # account name
    account_id: str  # the project's own account (events' "account")
    state: str = "Active"
    created: datetime | None = None


@dataclass
class Network:
    id: str
    name: str
    zoneid: str
    account_id: str
    cidr: str
    created: datetime
    state: str = "Implemented"
    type: str = "Isolated"  # "Shared": a zone-wide guest network every account may use


@dataclass
class VirtualMachine:
    id: str
    name: str
    zoneid: str
    account_id: str
    networkid: str | None
    serviceofferingid: str
    templateid: str
    created: datetime
    state: str = "Running"
    ipaddress: str = "10.1.1.10"


@dataclass
class Volume:
    id: str
    name: str
    zoneid: str
    account_id: str
    size: int
    created: datetime
    type: str = "DATADISK"
    virtualmachineid: str | None = None
    state: str = "Ready"
    deviceid: int | None = None
    snapshotid: str | None = None
    diskofferingid: str | None = None
    attached: datetime | None = None  # VolumeResponse ``attached``: when it was attached


@dataclass
class Snapshot:
    id: str
    name: str
    volumeid: str
    zoneid: str
    account_id: str
    created: datetime
    state: str = "BackedUp"
    intervaltype: str = "MANUAL"
    zone_ids: list[str] = field(default_factory=list)  # copies (copySnapshot) incl. origin
    # zone id → its image store's copy (snapshot_store_ref), origin first; see SnapshotStore.
    stores: dict[str, SnapshotStore] = field(default_factory=dict)
    # SnapshotVO keeps the volume's size, type and disk offering: a volume restored from
    # the snapshot gets them even once the source volume is gone (the DR case).
    size: int = 0
    volumetype: str = "DATADISK"
    diskofferingid: str | None = None


@dataclass
class SnapshotStore:
    """A snapshot's copy on one zone's secondary (image) store: a snapshot_store_ref row.

    ``state`` is ObjectInDataStoreStateMachine's: the origin copy is ``Allocated`` until the
    backup ends (then ``Ready``); a copy to another zone is downloaded there, ``Creating``
    until the download completes.  ``download`` is None for the backed-up origin, else the
    download state (``DOWNLOAD_IN_PROGRESS``, then ``DOWNLOADED``).
    """

    zoneid: str
    state: str = "Allocated"
    download: str | None = None
    percent: int = 0


@dataclass
class SnapshotPolicy:
    id: str
    volumeid: str
    schedule: str
    intervaltype: int
    maxsnaps: int
    timezone: str
    zone_ids: list[str] = field(default_factory=list)


@dataclass
class KubernetesCluster:
    id: str
    name: str
    zoneid: str
    account_id: str
    networkid: str | None
    created: datetime
    state: str = "Running"


@dataclass
class Tag:
    key: str
    value: str
    resourcetype: str  # "UserVm", "Volume", "Network", "Snapshot", "Project", ...
    resourceid: str
    account_id: str


@dataclass
class EventRecord:
    """One row of CloudStack's event table, as listEvents shows it."""

    id: str
    type: str
    state: str
    description: str
    user_id: str
    account_id: str
    created: datetime
    level: str = "INFO"
    resourcetype: str | None = None
    resourceid: str | None = None
    parentid: str | None = None


@dataclass
class AsyncJob:
    id: str
    cmd: str
    account_id: str
    user_id: str
    created: datetime
    instancetype: str | None = None
    instanceid: str | None = None
    status: int = 0
    resultcode: int = 0
    result: dict[str, Any] | None = None
    completed: datetime | None = None


# Resource-limit types as listResourceLimits reports them (Resource.ResourceType ordinals).
RESOURCE_TYPES: dict[int, str] = {
    0: "user_vm",
    1: "public_ip",
    2: "volume",
    3: "snapshot",
    4: "template",
    5: "project",
    6: "network",
    7: "vpc",
    8: "cpu",
    9: "memory",
    10: "primary_storage",
    11: "secondary_storage",
}


@dataclass
class ServiceOffering:
    id: str
    name: str
    displaytext: str
    cpunumber: int
    cpuspeed: int  # MHz
    memory: int  # MiB
    created: datetime


@dataclass
class DiskOffering:
    id: str
    name: str
    displaytext: str
    disksize: int  # GiB; 0 with iscustomized
    created: datetime
    iscustomized: bool = False


@dataclass
class Template:
    """A template registered in several zones (template_zone_ref): one list row per zone."""

    id: str
    name: str
    displaytext: str
    ostypeid: str
    ostypename: str
    zone_ids: list[str]
    created: datetime
    size: int = 2 * 1024**3
    templatetype: str = "BUILTIN"
    isfeatured: bool = True
    ispublic: bool = True
