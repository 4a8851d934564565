"""The sovereign-cloud demo world: sandbox domain tree, projects, departments, CI, DR tiers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from csfabric.cloudstack.simulator._world import World

# parent path → child domains, then the projects each leaf domain holds.
SANDBOX_TREE = {
    "fintech-projects": ("project-alpha", "project-beta"),
    "health-innovation": ("medtech-trial",),
    "govtech-accelerator": ("team-1", "team-2"),
}
DEPARTMENTS = ("dept-finance", "dept-health", "dept-transport")
CI_PIPELINES = ("payments-api", "citizen-portal", "records-etl")
# DR tier → (volume name, size GiB); tiers per the fabric's DR policy vocabulary.
DR_VOLUMES = (
    ("gold", "ledger-db-data", 100),
    ("gold", "patient-records", 200),
    ("silver", "reporting-cache", 50),
    ("bronze", "scratch-space", 20),
)


def build_demo(world: World) -> None:
    london = world.zone_named("zone-london")
    admin = world.admin
    sandbox = world.domain_named("ROOT/gov-sandbox")
    n = 1
    for child, projects in SANDBOX_TREE.items():
        dom = world.add_domain(child, sandbox.id)
        owner = world.add_account(f"{child}-admin", 2, dom.id)
        for name in projects:
            proj = world.add_project(name, dom.id, owner)
            n += 1
            net = world.add_network(f"{name}-net", london, proj.account_id, n)
            world.add_vm(f"{name}-vm-1", london, proj.account_id, net)
            world.add_kubernetes(london.id, proj.account_id, f"{name}-k8s")
            world.tag("Project", proj.id, proj.account_id, **{"csfabric:tenant": name})
    for dept in DEPARTMENTS:
        dom = world.add_domain(dept, world.root.id)
        acct = world.add_account(dept, 0, dom.id)
        n += 1
        net = world.add_network(f"{dept}-net", london, acct.id, n)
        world.add_vm(f"{dept}-app-1", london, acct.id, net)
    for pipeline in CI_PIPELINES:
        env = f"ci-{pipeline}"
        n += 1
        net = world.add_network(f"{env}-net", london, admin.id, n)
        vm = world.add_vm(f"{env}-runner", london, admin.id, net)
        world.tag("Network", net.id, admin.id, **{"csfabric:env": env})
        world.tag("UserVm", vm.id, admin.id, **{"csfabric:env": env})
    for tier, name, gib in DR_VOLUMES:
        vol = world.add_volume(name, london, admin.id, gib)
        world.tag("Volume", vol.id, admin.id, **{"csfabric:dr-tier": tier})
