"""Who and where: domains, accounts and networks (list only; deleteNetwork is in _core)."""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json, cs_date
from csfabric.cloudstack.simulator._registry import Param, api
from csfabric.cloudstack.simulator._state import Account, Domain, Network
from csfabric.cloudstack.simulator._world import EPOCH

_PROJECT = Param("projectid", "uuid", entity="project", description="the project's id")
_LISTALL = Param("listall", "boolean", description="all resources the caller may see")


def render_network(call: Call, net: Network) -> Json:
    w = call.world
    zone = w.zones[net.zoneid]
    prefix = net.cidr.split("/")[0].rsplit(".", 1)[0]
    shared = net.type == "Shared"
    offering = "DefaultSharedNetworkOffering" if shared else "DefaultIsolatedNetworkOffering"
    out: Json = {
        "id": net.id,
        "name": net.name,
        "displaytext": net.name,
        "broadcastdomaintype": "Vlan",
        "traffictype": "Guest",
        "gateway": f"{prefix}.1",
        "netmask": "255.255.0.0" if net.cidr.endswith("/16") else "255.255.255.0",
        "cidr": net.cidr,
        "zoneid": zone.id,
        "zonename": zone.name,
        "networkofferingid": w.stable_id(f"networkoffering/{offering}"),
        "networkofferingname": offering,
        "networkofferingdisplaytext": offering,
        "networkofferingconservemode": True,
        "networkofferingavailability": "Optional",
        "issystem": False,
        "state": net.state,
        "related": net.id,
        "dns1": zone.dns1,
        "type": net.type,
        "acltype": "Domain" if shared else "Account",
    }
    if shared:
        dom = w.domains[w.root.id]
        out |= {"domainid": dom.id, "domain": dom.name, "domainpath": dom.path}
    else:
        out |= w.owner_of(net.account_id)
    out |= {
        "service": [],
        "canusefordeploy": True,
        "ispersistent": False,
        "tags": call.tags(net.id),
        "displaynetwork": True,
        # Primitive booleans of NetworkResponse.
        "restartrequired": False,
        "specifyipranges": shared,
        "strechedl2subnet": False,
        "redundantrouter": False,
        "hasannotations": False,
    }
    return out


@api(
    "listNetworks",
    "user.network.ListNetworksCmd",
    params=(
        Param("id", "uuid", entity="network", description="list networks by ID"),
        Param("zoneid", "uuid", entity="zone", description="the zone ID of the network"),
        Param("name", description="list networks by name"),
        Param("type", description="the type of the network: Isolated, Shared or L2"),
        Param("keyword", description="List by keyword"),
        Param("canusefordeploy", "boolean", description="networks available for deployment"),
        _LISTALL,
        _PROJECT,
    ),
    description="Lists all available networks.",
)
async def list_networks(call: Call) -> Json:
    w = call.world
    owned = set(call.visible_owners())
    nets = [
        n
        for n in w.networks.values()
        if (n.type == "Shared" and call.get("projectid") is None) or n.account_id in owned
    ]
    for field in ("id", "zoneid", "name", "type"):
        if (want := call.get(field)) is not None:
            nets = [n for n in nets if str(getattr(n, field)).lower() == want.lower()]
    if (kw := call.get("keyword")) is not None:
        nets = [n for n in nets if kw.lower() in n.name.lower()]
    nets = [n for n in nets if call.match_tags(n.id)]
    return call.list_response("network", nets, lambda n: render_network(call, n))


def render_domain(call: Call, dom: Domain) -> Json:
    w = call.world
    parent = w.domains.get(dom.parentid or "")
    out: Json = {"id": dom.id, "name": dom.name, "level": dom.level}
    if parent is not None:
        out |= {"parentdomainid": parent.id, "parentdomainname": parent.name}
    out |= {
        "haschild": any(d.parentid == dom.id for d in w.domains.values()),
        "path": dom.path,
        "state": "Active",
        "created": cs_date(EPOCH),
        "hasannotations": False,
    }
    return out


def _visible_domains(call: Call) -> list[Domain]:
    doms = list(call.world.domains.values())
    if call.account.accounttype == 1:
        return doms
    mine = call.world.domains[call.account.domainid]
    if call.account.accounttype == 2:  # a domain admin sees its subtree
        return [d for d in doms if (d.path + "/").startswith(mine.path + "/")]
    return [mine]


@api(
    "listDomains",
    "admin.domain.ListDomainsCmd",
    params=(
        Param("id", "uuid", entity="domain", description="List domain by domain ID."),
        Param("name", description="List domain by domain name."),
        Param("level", "integer", description="List domains by domain level."),
        _LISTALL,
    ),
    description="Lists domains and provides detailed information for listed domains",
)
async def list_domains(call: Call) -> Json:
    doms = _visible_domains(call)
    if (did := call.get("id")) is not None:
        doms = [d for d in doms if d.id == did]
    if (name := call.get("name")) is not None:
        doms = [d for d in doms if d.name == name]
    if call.get("level") is not None:
        doms = [d for d in doms if d.level == call.int_param("level", 0)]
    return call.list_response("domain", doms, lambda d: render_domain(call, d))


def render_account(call: Call, acct: Account) -> Json:
    w = call.world
    dom = w.domains[acct.domainid]
    role = w.stable_id(f"role/{acct.roletype}")
    users = [
        {
            "id": u.id,
            "username": u.username,
            "created": cs_date(EPOCH),
            "state": "enabled",
            "account": acct.name,
            "accounttype": acct.accounttype,
            "roleid": role,
            "roletype": acct.roletype,
            "rolename": acct.roletype,
            "domainid": dom.id,
            "domain": dom.name,
            "accountid": acct.id,
            "usersource": "native",
            # Primitive booleans of UserResponse; never a key: listAccounts shows none.
            "iscallerchilddomain": False,
            "isdefault": acct.name == "admin" and u.username == "admin",
            "is2fausermandated": False,
            "is2faenabled": False,
        }
        for u in acct.users
    ]
    return {
        "id": acct.id,
        "name": acct.name,
        "accounttype": acct.accounttype,
        "roleid": role,
        "rolename": acct.roletype,
        "roletype": acct.roletype,
        "domainid": dom.id,
        "domain": dom.name,
        "domainpath": dom.path,
        "state": "enabled",
        "created": cs_date(EPOCH),
        "user": users,
        "isdefault": acct.name == "admin",
        "hasannotations": False,
    }


@api(
    "listAccounts",
    "user.account.ListAccountsCmd",
    params=(
        Param("id", "uuid", entity="account", description="list account by account ID"),
        Param("name", description="list account by account name"),
        Param("domainid", "uuid", entity="domain", description="list accounts in the domain"),
        Param("accounttype", "integer", description="list accounts by account type"),
        _LISTALL,
    ),
    description="Lists accounts and provides detailed account information for listed accounts",
)
async def list_accounts(call: Call) -> Json:
    doms = {d.id for d in _visible_domains(call)}
    accts = [a for a in call.world.accounts.values() if a.project_id is None and a.domainid in doms]
    if call.account.accounttype == 0:
        accts = [call.account]
    for field in ("id", "name", "domainid"):
        if (want := call.get(field)) is not None:
            accts = [a for a in accts if getattr(a, field) == want]
    if call.get("accounttype") is not None:
        accts = [a for a in accts if a.accounttype == call.int_param("accounttype", -1)]
    return call.list_response("account", accts, lambda a: render_account(call, a))
