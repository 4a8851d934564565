"""Resource-limit checks as ResourceLimitManagerImpl.checkAccountResourceLimit makes them.

One place for the over-limit answer (535 RESOURCE_ALLOCATION_ERROR with CloudStack's text)
so every command that allocates counts the same way: the limit of the owner (a project's
own account → the project's limit), unset limits falling back to the max.* defaults, root
admins unlimited (``World.limit_for``).
"""

from __future__ import annotations

from csfabric.cloudstack.simulator._errors import over_limit
from csfabric.cloudstack.simulator._state import RESOURCE_TYPES
from csfabric.cloudstack.simulator._world import World


def check_limit(world: World, account_id: str, rtype: int, used: int, requested: int = 1) -> None:
    """Raise CloudStack's 535 when ``used + requested`` exceeds the owner's limit."""
    acct = world.accounts[account_id]
    proj = world.projects.get(acct.project_id or "")
    limit = world.limit_for(proj.id if proj else acct.id, rtype)
    if limit < 0 or used + requested <= limit:
        return
    owner = f"Project Name = {proj.name}" if proj else f"Account Name = {acct.name}"
    raise over_limit(
        f"Maximum amount of resources of Type = '{RESOURCE_TYPES[rtype]}', tag = 'null' for "
        f"{owner} in Domain Id = {world.db_id(acct.domainid)} is exceeded: Account Resource "
        f"Limit = {limit}, Current Account Resource Amount = {used}, Current Account Resource "
        f"Reservation = 0, Requested Resource Amount = {requested}."
    )


def vm_count(world: World, account_id: str) -> int:
    """The owner's ``user_vm`` count; destroyVirtualMachine decrements it."""
    return sum(
        1
        for v in world.vms.values()
        if v.account_id == account_id and v.state not in ("Destroyed", "Expunging")
    )
