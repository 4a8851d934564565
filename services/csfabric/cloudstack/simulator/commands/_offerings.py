"""What a VM is made from: service offerings, disk offerings, templates (list only)."""

from __future__ import annotations

from csfabric.cloudstack.simulator._call import Call, Json, cs_date
from csfabric.cloudstack.simulator._errors import invalid_parameter
from csfabric.cloudstack.simulator._registry import Param, api
from csfabric.cloudstack.simulator._state import DiskOffering, ServiceOffering, Template

# ListTemplatesCmd's TemplateFilter values; the simulator's templates are all public,
# featured, ready built-ins, so every filter but "self"/"shared"/"sharedexecutable" shows them.
_FILTERS = {"featured", "self", "selfexecutable", "sharedexecutable", "executable", "community"}
_FILTERS |= {"all", "shared"}


def _name_filter(call: Call, items: list[Json]) -> list[Json]:
    if (name := call.get("name")) is not None:
        items = [i for i in items if i["name"] == name]
    if (kw := call.get("keyword")) is not None:
        items = [i for i in items if kw.lower() in i["name"].lower()]
    return items


def render_service_offering(off: ServiceOffering) -> Json:
    return {
        "id": off.id,
        "name": off.name,
        "displaytext": off.displaytext,
        "cpunumber": off.cpunumber,
        "cpuspeed": off.cpuspeed,
        "memory": off.memory,
        "created": cs_date(off.created),
        "storagetype": "shared",
        "provisioningtype": "thin",
        # Primitive booleans of ServiceOfferingResponse: Gson always writes them.
        "offerha": False,
        "limitcpuuse": False,
        "isvolatile": False,
        "issystem": False,
        "defaultuse": False,
        "iscustomized": False,
        "dynamicscalingenabled": True,
        "diskofferingstrictness": False,
        "encryptroot": False,
        "hasannotations": False,
    }


@api(
    "listServiceOfferings",
    "user.offering.ListServiceOfferingsCmd",
    params=(
        Param("id", "uuid", entity="serviceoffering", description="ID of the service offering"),
        Param("name", description="name of the service offering"),
        Param("keyword", description="List by keyword"),
        Param("zoneid", "uuid", entity="zone", description="offerings available in the zone"),
    ),
    description="Lists all available service offerings.",
)
async def list_service_offerings(call: Call) -> Json:
    rows = [render_service_offering(o) for o in call.world.service_offerings.values()]
    if (oid := call.get("id")) is not None:
        rows = [r for r in rows if r["id"] == oid]
    rows = _name_filter(call, rows)
    return call.list_response("serviceoffering", rows, lambda r: r)


def render_disk_offering(off: DiskOffering) -> Json:
    return {
        "id": off.id,
        "name": off.name,
        "displaytext": off.displaytext,
        "disksize": off.disksize,
        "created": cs_date(off.created),
        "iscustomized": off.iscustomized,
        "storagetype": "shared",
        "provisioningtype": "thin",
        "displayoffering": True,
        "cacheMode": "none",
        # Primitive booleans of DiskOfferingResponse.
        "encrypt": False,
        "disksizestrictness": False,
        "hasannotations": False,
    }


@api(
    "listDiskOfferings",
    "user.offering.ListDiskOfferingsCmd",
    params=(
        Param("id", "uuid", entity="diskoffering", description="ID of the disk offering"),
        Param("name", description="name of the disk offering"),
        Param("keyword", description="List by keyword"),
        Param("zoneid", "uuid", entity="zone", description="offerings available in the zone"),
    ),
    description="Lists all available disk offerings.",
)
async def list_disk_offerings(call: Call) -> Json:
    rows = [render_disk_offering(o) for o in call.world.disk_offerings.values()]
    if (oid := call.get("id")) is not None:
        rows = [r for r in rows if r["id"] == oid]
    rows = _name_filter(call, rows)
    return call.list_response("diskoffering", rows, lambda r: r)


def render_template(call: Call, tpl: Template, zone_id: str) -> Json:
    zone = call.world.zones[zone_id]
    admin = call.world.admin
    dom = call.world.domains[admin.domainid]
    return {
        "id": tpl.id,
        "name": tpl.name,
        "displaytext": tpl.displaytext,
        "ispublic": tpl.ispublic,
        "created": cs_date(tpl.created),
        "isready": True,
        "passwordenabled": False,
        "format": "VHD",
        "isfeatured": tpl.isfeatured,
        "crossZones": True,
        "ostypeid": tpl.ostypeid,
        "ostypename": tpl.ostypename,
        "account": "system",
        "zoneid": zone.id,
        "zonename": zone.name,
        "status": "Download Complete",
        "size": tpl.size,
        "physicalsize": tpl.size,
        "templatetype": tpl.templatetype,
        "hypervisor": "Simulator",
        "domain": dom.name,
        "domainid": dom.id,
        "isextractable": False,
        "bootable": True,
        "sshkeyenabled": False,
        "isdynamicallyscalable": False,
        "directdownload": False,
        "deployasis": False,
        "requireshvm": False,
        "tags": call.tags(tpl.id),
        "hasannotations": False,
    }


@api(
    "listTemplates",
    "user.template.ListTemplatesCmd",
    params=(
        Param(
            "templatefilter",
            required=True,
            description="featured, self, selfexecutable, sharedexecutable, executable, "
            "community or all",
        ),
        Param("id", "uuid", entity="template", description="the template ID"),
        Param("name", description="the template name"),
        Param("keyword", description="List by keyword"),
        Param("zoneid", "uuid", entity="zone", description="list templates by zone ID"),
        Param("hypervisor", description="the hypervisor for which to restrict the search"),
    ),
    description="List all public, private, and privileged templates.",
)
async def list_templates(call: Call) -> Json:
    tfilter = call.req("templatefilter").lower()
    if tfilter not in _FILTERS:
        raise invalid_parameter(f"Invalid templatefilter: {call.req('templatefilter')}")
    if tfilter in ("self", "shared", "sharedexecutable"):
        return {}  # every template is the system's: none is the caller's or shared with it
    zone = call.get("zoneid")
    rows = [
        render_template(call, t, z)
        for t in call.world.templates.values()
        for z in t.zone_ids
        if zone is None or z == zone
    ]
    if (tid := call.get("id")) is not None:
        rows = [r for r in rows if r["id"] == tid]
    if (hv := call.get("hypervisor")) is not None:
        rows = [r for r in rows if r["hypervisor"].lower() == hv.lower()]
    rows = _name_filter(call, rows)
    return call.list_response("template", rows, lambda r: r)
