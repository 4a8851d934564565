"""A deterministic CloudStack world built from a seed.

Same seed → same uuids, same API keys (uuid5 / HMAC derived from the seed), so a
restarted simulator keeps every service's configuration valid.  ``World.demo(seed)`` is the
sovereign-cloud world of the issue; ``World(seed)`` alone is the minimal one (zones + the
three accounts), cheaper for unit tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from csfabric.cloudstack.simulator._state import (
    Account,
    AsyncJob,
    DiskOffering,
    Domain,
    EventRecord,
    KubernetesCluster,
    Network,
    Project,
    ServiceOffering,
    Snapshot,
    SnapshotPolicy,
    Tag,
    Template,
    User,
    VirtualMachine,
    Volume,
    Zone,
)

# Seeded objects get fixed timestamps so two worlds from one seed compare equal.
EPOCH = datetime(2024, 11, 1, tzinfo=UTC)
SERVICE_OFFERING = "Small Instance"
TEMPLATE = "CentOS 5.6 (64-bit) no GUI (Simulator)"
# Config's max.project.* defaults (ResourceLimitManagerImpl.projectResourceLimitMap).
DEFAULT_PROJECT_LIMITS = {0: 20, 1: 20, 2: 20, 3: 20, 4: 20, 6: 20, 7: 20, 8: 40, 9: 40960}
DEFAULT_PROJECT_LIMITS |= {10: 200, 11: 400}
# max.account.* defaults: what an account without its own limit gets (root admins: none).
DEFAULT_ACCOUNT_LIMITS = DEFAULT_PROJECT_LIMITS | {5: 10}


class World:
    # Fabric seconds a snapshot copy to another zone takes (Simulator(copy_latency=...)).
    copy_latency: float = 0.0
    # Zones whose image stores fail every snapshot copy (a test's broken DR site).
    copy_fail_zones: frozenset[str] = frozenset()

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._ns = uuid.uuid5(uuid.NAMESPACE_URL, f"csfabric-simulator/{seed}")
        self._counter = 0
        self.zones: dict[str, Zone] = {}
        self.domains: dict[str, Domain] = {}
        self.accounts: dict[str, Account] = {}
        self.projects: dict[str, Project] = {}
        self.networks: dict[str, Network] = {}
        self.vms: dict[str, VirtualMachine] = {}
        self.volumes: dict[str, Volume] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.snapshot_policies: dict[str, SnapshotPolicy] = {}
        self.kubernetes: dict[str, KubernetesCluster] = {}
        self.tags: list[Tag] = []
        self.events: list[EventRecord] = []
        self.jobs: dict[str, AsyncJob] = {}
        # (owner id — account or project —, resourcetype) → max; -1 unlimited.
        self.limits: dict[tuple[str, int], int] = {}
        self.service_offering_id = self.new_id("serviceoffering")
        self.template_id = self.new_id("template")
        self.service_offerings: dict[str, ServiceOffering] = {}
        self.disk_offerings: dict[str, DiskOffering] = {}
        self.templates: dict[str, Template] = {}
        self._build_base()

    # -- identity ---------------------------------------------------------------------------

    def new_id(self, kind: str) -> str:
        self._counter += 1
        return str(uuid.uuid5(self._ns, f"{kind}/{self._counter}"))

    def stable_id(self, name: str) -> str:
        """An id derived from a name, for sub-objects (NICs) that have no counter slot."""
        return str(uuid.uuid5(self._ns, name))

    def _key(self, purpose: str, username: str) -> str:
        # CloudStack keys are 64 random bytes, base64url without padding (86 chars).
        mac = hmac.new(str(self.seed).encode(), f"{purpose}/{username}".encode(), "sha512")
        return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")

    # -- base world -------------------------------------------------------------------------

    def _build_base(self) -> None:
        self.root = self.add_domain("ROOT", None)
        self.add_zone("zone-london", "Primary zone (London)")
        self.add_zone("zone-manchester", "Disaster-recovery zone (Manchester)")
        admin = self.add_account("admin", 1, self.root.id, users=("admin", "csfabric"))
        self.admin = admin
        self.fabric_user = admin.users[1]
        sandbox = self.add_domain("gov-sandbox", self.root.id)
        self.add_account("sandbox-admin", 2, sandbox.id)
        self.add_account("user", 0, sandbox.id)
        from csfabric.cloudstack.simulator._catalogue import build_catalogue

        build_catalogue(self)

    def add_zone(self, name: str, description: str) -> Zone:
        zone = Zone(self.new_id("zone"), name, description)
        self.zones[zone.id] = zone
        return zone

    def add_domain(self, name: str, parent_id: str | None) -> Domain:
        parent = self.domains.get(parent_id) if parent_id else None
        path = f"{parent.path}/{name}" if parent else name
        level = parent.level + 1 if parent else 0
        dom = Domain(self.new_id("domain"), name, path, parent_id, level)
        self.domains[dom.id] = dom
        return dom

    def add_account(
        self, name: str, accounttype: int, domain_id: str, users: tuple[str, ...] = ()
    ) -> Account:
        role = {0: "User", 1: "Admin", 2: "DomainAdmin"}[accounttype]
        acct = Account(self.new_id("account"), name, accounttype, role, domain_id)
        for username in users or (name,):
            key = self._key("apikey", username)
            secret = self._key("secretkey", username)
            acct.users.append(User(self.new_id("user"), username, key, secret))
        self.accounts[acct.id] = acct
        return acct

    def add_project(self, name: str, domain_id: str, owner: Account) -> Project:
        acct = Account(self.new_id("account"), f"PrjAcct-{name}", 5, "User", domain_id)
        self.accounts[acct.id] = acct
        proj = Project(self.new_id("project"), name, name, domain_id, owner.name, acct.id)
        proj.created = EPOCH
        acct.project_id = proj.id
        self.projects[proj.id] = proj
        for rtype, limit in DEFAULT_PROJECT_LIMITS.items():
            self.limits[(proj.id, rtype)] = limit
        return proj

    # -- look-ups ---------------------------------------------------------------------------

    def keys(self) -> dict[str, dict[str, str]]:
        """``{username: {"apikey", "secretkey"}}`` for every real (non-project) user."""
        out: dict[str, dict[str, str]] = {}
        for acct in self.accounts.values():
            for user in acct.users:
                out[user.username] = {"apikey": user.apikey, "secretkey": user.secretkey}
        return out

    def user_by_apikey(self, apikey: str) -> tuple[User, Account] | None:
        for acct in self.accounts.values():
            for user in acct.users:
                if user.apikey == apikey:
                    return user, acct
        return None

    def zone_named(self, name: str) -> Zone:
        return next(z for z in self.zones.values() if z.name == name)

    def domain_named(self, path: str) -> Domain:
        return next(d for d in self.domains.values() if d.path == path)

    def account_named(self, name: str) -> Account:
        return next(a for a in self.accounts.values() if a.name == name)

    def db_id(self, uuid: str) -> int:
        """A stand-in for CloudStack's internal (database) id, for texts that show one."""
        ids: dict[str, int] = self.__dict__.setdefault("_db_ids", {})
        return ids.setdefault(uuid, len(ids) + 1)

    def limit_for(self, owner_id: str, rtype: int) -> int:
        """The limit of a project (by project id) or account; -1 is unlimited.

        Unset limits are not unlimited: ResourceLimitManagerImpl falls back to the
        max.project.* / max.account.* defaults; root admins have no limits at all.
        """
        if (owner_id, rtype) in self.limits:
            return self.limits[(owner_id, rtype)]
        if owner_id in self.projects:
            return DEFAULT_PROJECT_LIMITS.get(rtype, -1)
        acct = self.accounts.get(owner_id)
        if acct is None or acct.accounttype == 1:
            return -1
        return DEFAULT_ACCOUNT_LIMITS.get(rtype, -1)

    def tags_for(self, resource_id: str) -> list[Tag]:
        return [t for t in self.tags if t.resourceid == resource_id]

    def owner_of(self, account_id: str) -> dict[str, Any]:
        """account/domain/project fields shared by every owned resource's response."""
        acct = self.accounts[account_id]
        dom = self.domains[acct.domainid]
        out: dict[str, Any] = {}
        if acct.project_id is not None:
            proj = self.projects[acct.project_id]
            out |= {"projectid": proj.id, "project": proj.name}
        else:
            out["account"] = acct.name
        return out | {"domainid": dom.id, "domain": dom.name, "domainpath": dom.path}

    # -- seeded resources -------------------------------------------------------------------

    def add_network(self, name: str, zone: Zone, account_id: str, n: int) -> Network:
        net = Network(self.new_id("network"), name, zone.id, account_id, f"10.{n}.0.0/24", EPOCH)
        self.networks[net.id] = net
        return net

    def add_vm(self, name: str, zone: Zone, account_id: str, net: Network | None) -> VirtualMachine:
        when = EPOCH + timedelta(minutes=len(self.vms))
        vm = VirtualMachine(
            self.new_id("vm"),
            name,
            zone.id,
            account_id,
            net.id if net else None,
            self.service_offering_id,
            self.template_id,
            when,
        )
        self.vms[vm.id] = vm
        root = Volume(self.new_id("volume"), f"ROOT-{len(self.vms)}", zone.id, account_id, 0, when)
        root.size, root.type, root.virtualmachineid, root.deviceid = 2 * 1024**3, "ROOT", vm.id, 0
        self.volumes[root.id] = root
        return vm

    def add_volume(self, name: str, zone: Zone, account_id: str, gib: int) -> Volume:
        vol = Volume(self.new_id("volume"), name, zone.id, account_id, gib * 1024**3, EPOCH)
        # Every data disk has its disk offering: the one of its size, else the Custom one.
        sized = [o for o in self.disk_offerings.values() if o.disksize in (gib, 0)]
        sized.sort(key=lambda o: o.iscustomized)
        vol.diskofferingid = sized[0].id if sized else None
        self.volumes[vol.id] = vol
        return vol

    def add_kubernetes(self, zone_id: str, account_id: str, name: str = "") -> KubernetesCluster:
        cluster = KubernetesCluster(
            self.new_id("kubernetes"), name or "k8s", zone_id, account_id, None, EPOCH
        )
        cluster.name = name or f"k8s-{cluster.id[:8]}"
        self.kubernetes[cluster.id] = cluster
        return cluster

    def tag(self, resourcetype: str, resource_id: str, account_id: str, **kv: str) -> None:
        for key, value in kv.items():
            self.tags.append(Tag(key, value, resourcetype, resource_id, account_id))

    @classmethod
    def demo(cls, seed: int = 0) -> World:
        from csfabric.cloudstack.simulator._demo import build_demo

        world = cls(seed)
        build_demo(world)
        return world


def key_digest(text: str) -> str:
    """Short stable digest used in names (e.g. seeded IPs)."""
    return hashlib.sha256(text.encode()).hexdigest()[:8]
