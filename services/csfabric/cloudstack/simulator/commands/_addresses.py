"""Public addresses and forwarding rules, which the simulator does not model: the list
commands answer CloudStack's empty list (``{}``) after checking their parameters.

They exist because ordinary clients call them on the way to something else (Libcloud's
``list_nodes`` asks for all three to attach addresses to each node).
"""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json
from csfabric.cloudstack.simulator._registry import Param, api

_COMMON = (
    Param("listall", "boolean", description="all resources the caller may see"),
    Param("projectid", "uuid", entity="project", description="the project's id"),
    Param("keyword", description="List by keyword"),
)
_VM = Param("virtualmachineid", "uuid", entity="vm", description="lists rules for this VM")


async def _none(call: Call) -> Json:
    return {}


api(
    "listPublicIpAddresses",
    "user.address.ListPublicIpAddressesCmd",
    params=(
        Param("zoneid", "uuid", entity="zone", description="lists IP addresses by zone"),
        Param("associatednetworkid", "uuid", entity="network", description="by network"),
        *_COMMON,
    ),
    description="Lists all public IP addresses",
)(_none)
api(
    "listPortForwardingRules",
    "user.firewall.ListPortForwardingRulesCmd",
    params=(_VM, *_COMMON),
    description="Lists all port forwarding rules for an IP address.",
)(_none)
api(
    "listIpForwardingRules",
    "user.nat.ListIpForwardingRulesCmd",
    params=(_VM, *_COMMON),
    description="List the IP forwarding rules",
)(_none)
