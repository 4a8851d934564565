"""The base world's catalogue: offerings, templates and a shared guest network per zone.

What a fresh CloudStack simulator deployment offers (``Small Instance``/``Medium Instance``,
the ``Small``/``Medium``/``Large``/``Custom`` disk offerings, a built-in CentOS template in
every zone), so clients discover ids by name instead of guessing them.  Ids come from
``World.stable_id`` (not the counter) so adding the catalogue shifts no other uuid.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from csfabric.cloudstack.simulator._state import DiskOffering, Network, ServiceOffering, Template

if TYPE_CHECKING:
    from csfabric.cloudstack.simulator._world import World

# name → (display text, cpus, MHz, MiB); the first is the world's ``service_offering_id``.
SERVICE_OFFERINGS = {
    "Small Instance": ("Small Instance", 1, 500, 512),
    "Medium Instance": ("Medium Instance", 1, 1000, 1024),
    "Large Instance": ("Large Instance", 2, 2000, 4096),
}
# name → (display text, GiB; 0 = customized size)
DISK_OFFERINGS = {
    "Small": ("Small Disk, 5 GB", 5),
    "Medium": ("Medium Disk, 20 GB", 20),
    "Large": ("Large Disk, 100 GB", 100),
    "Custom": ("Custom Disk", 0),
}
# name → OS type; the first is the world's ``template_id``. Every template is in every zone.
TEMPLATES = {
    "CentOS 5.6 (64-bit) no GUI (Simulator)": "CentOS 5.5 (64-bit)",
    "Ubuntu 22.04 LTS (Simulator)": "Ubuntu 22.04 LTS",
}


def build_catalogue(world: World) -> None:
    from csfabric.cloudstack.simulator._world import EPOCH

    for i, (name, (text, cpus, mhz, mib)) in enumerate(SERVICE_OFFERINGS.items()):
        sid = world.service_offering_id if i == 0 else world.stable_id(f"serviceoffering/{name}")
        world.service_offerings[sid] = ServiceOffering(sid, name, text, cpus, mhz, mib, EPOCH)
    for name, (text, gib) in DISK_OFFERINGS.items():
        did = world.stable_id(f"diskoffering/{name}")
        world.disk_offerings[did] = DiskOffering(did, name, text, gib, EPOCH, gib == 0)
    zones = list(world.zones)
    for i, (name, ostype) in enumerate(TEMPLATES.items()):
        tid = world.template_id if i == 0 else world.stable_id(f"template/{name}")
        osid = world.stable_id(f"ostype/{ostype}")
        world.templates[tid] = Template(tid, name, name, osid, ostype, list(zones), EPOCH)
    for n, zone in enumerate(world.zones.values()):
        net = Network(
            world.stable_id(f"network/shared/{zone.name}"),
            f"guestnet-{zone.name.removeprefix('zone-')}",
            zone.id,
            world.admin.id,
            f"10.{200 + n}.0.0/16",
            EPOCH,
            "Setup",
            "Shared",
        )
        world.networks[net.id] = net
