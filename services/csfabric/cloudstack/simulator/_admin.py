"""The simulator's admin endpoints: ``/admin/faults`` (faults at run time), ``/admin/alerts``.

``GET`` lists the faults in force (and how many errors each injected), ``POST`` sets one
(a fault object) or several (``{"faults": [...]}`` or a list), ``DELETE`` clears them all
or, with ``?command=X``, one.  Every call needs ``X-Admin-Key: <admin secret key>`` — the
root admin account's secret, the one credential that already lets a caller do anything
to this cloud — compared in constant time; anything else gets 401.  The key is never
logged, echoed or put in an error.

``POST /admin/alerts`` raises a CloudStack alert — above all ``ALERT.COMPUTE.HOST``, the only
host-down signal CloudStack gives, which the simulator (having no hosts) cannot cause itself.
The alert goes to the feeds like every other event; like CloudStack it is no listEvents row.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from csfabric.cloudstack import _native as native
from csfabric.cloudstack.simulator._emit import Emitter
from csfabric.cloudstack.simulator._faults import FaultPlan
from csfabric.cloudstack.simulator._state import Zone
from csfabric.cloudstack.simulator._world import World
from csfabric.kernel import ConfigError

log = logging.getLogger("csfabric.simulator.admin")
ADMIN_HEADER = "X-Admin-Key"
FAULTS_PATH = "/admin/faults"
ALERTS_PATH = "/admin/alerts"
HOST_DOWN = "ALERT.COMPUTE.HOST"
ALERT_FIELDS = frozenset({"event", "zone", "pod", "host", "subject", "body"})


class Administered(Protocol):
    """What the admin endpoints need of the simulator."""

    faults: FaultPlan | None
    world: World
    emitter: Emitter


def register_admin(
    app: web.Application, simulator: Administered, admin_secret: Callable[[], str]
) -> FaultPlan:
    """Mount ``/admin/faults`` on ``app``; returns the plan it edits (created if missing).

    ``admin_secret`` is asked on every request (cheap), so keys the world regenerates
    are honoured without re-registering.
    """
    plan = simulator.faults
    if plan is None:
        plan = simulator.faults = FaultPlan()

    def authorised(request: web.Request) -> bool:
        given = request.headers.get(ADMIN_HEADER, "")
        return bool(given) and hmac.compare_digest(given.encode(), admin_secret().encode())

    def refuse() -> web.Response:
        return web.json_response({"error": f"missing or wrong {ADMIN_HEADER}"}, status=401)

    def listing() -> dict[str, Any]:
        return {"faults": [f.as_dict() for f in plan.faults], "injected": dict(plan.injected)}

    async def get_faults(request: web.Request) -> web.Response:
        if not authorised(request):
            return refuse()
        return web.json_response(listing())

    async def post_faults(request: web.Request) -> web.Response:
        if not authorised(request):
            return refuse()
        try:
            body = json.loads(await request.read() or b"{}")
            specs = body.get("faults", [body]) if isinstance(body, dict) else body
            if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
                raise ConfigError("want a fault object, a list of them, or {'faults': [...]}")
            for spec in specs:  # validate all before changing anything
                FaultPlan().apply(spec)
            changed = [plan.apply(spec).as_dict() for spec in specs]
        except (ValueError, ConfigError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        log.info("faults set", extra={"faults": changed})
        return web.json_response({"set": changed, **listing()})

    async def delete_faults(request: web.Request) -> web.Response:
        if not authorised(request):
            return refuse()
        command = request.query.get("command")
        cleared = plan.clear(command)
        log.info("faults cleared", extra={"command": command or "*all*", "cleared": cleared})
        return web.json_response({"cleared": cleared, **listing()})

    app.router.add_get(FAULTS_PATH, get_faults)
    app.router.add_post(FAULTS_PATH, post_faults)
    app.router.add_delete(FAULTS_PATH, delete_faults)

    async def post_alert(request: web.Request) -> web.Response:
        if not authorised(request):
            return refuse()
        try:
            spec = json.loads(await request.read() or b"{}")
            event = build_alert(simulator.world, simulator.emitter, spec)
        except (ValueError, ConfigError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        # Emitter.publish, not Emitter.action: alerts are not listEvents rows in CloudStack.
        await simulator.emitter.publish(event)
        log.info(
            "alert raised", extra={"alert": event.event_type, "subject": event.body["subject"]}
        )
        key = event.routing_key()
        return web.json_response({"event_id": event.event_id, "routing_key": key, **event.body})

    app.router.add_post(ALERTS_PATH, post_alert)
    return plan


def _zone(world: World, ref: str | None) -> Zone:
    if not ref:
        return next(iter(world.zones.values()))  # the first (primary) zone
    found = world.zones.get(ref) or next((z for z in world.zones.values() if z.name == ref), None)
    if found is None:
        raise ConfigError(f"no zone named or with id {ref!r}")
    return found


def _pod(world: World, zone: Zone) -> tuple[str, str]:
    """(uuid, name) of the zone's pod; derived from the zone when the world models none."""
    pods: dict[str, Any] = getattr(world, "pods", None) or {}
    for pod in pods.values():
        if getattr(pod, "zoneid", None) == zone.id:
            return str(pod.id), str(pod.name)
    return world.stable_id(f"pod/{zone.id}"), f"{zone.name}-pod-1"


def build_alert(world: World, emitter: Emitter, spec: object) -> native.NativeEvent:
    """The AlertEvent for a ``POST /admin/alerts`` body (all fields optional strings).

    Default wording is CloudStack's own (AgentManagerImpl / HighAvailabilityManagerImpl):
    subject ``Host is down, name: H (id:N), availability zone: Z, pod: P``, body
    ``Host [name: H (id:N), availability zone: Z, pod: P] is down.``
    """
    if not isinstance(spec, dict):
        raise ConfigError("want a JSON object")
    if unknown := set(spec) - ALERT_FIELDS:
        raise ConfigError(f"unknown fields {sorted(unknown)}; known: {sorted(ALERT_FIELDS)}")
    if not all(isinstance(v, str) for v in spec.values()):
        raise ConfigError("every field must be a string")
    fields: dict[str, str] = spec
    event = fields.get("event") or HOST_DOWN
    if not event.startswith("ALERT."):
        raise ConfigError(f"{event!r} is not a CloudStack alert type (ALERT.*)")
    zone = _zone(world, fields.get("zone"))
    pod_uuid, pod_name = _pod(world, zone)
    desc = f"name: {fields.get('host') or 'host-1'} (id:1), availability zone: {zone.name}"
    desc += f", pod: {pod_name}"
    return native.alert_event(
        event,
        zone_uuid=zone.id,
        pod_uuid=fields.get("pod") or pod_uuid,
        subject=fields.get("subject") or f"Host is down, {desc}",
        body=fields.get("body", f"Host [{desc}] is down."),
        when=emitter.now(),
        tz=emitter.tz,
        event_id=world.new_id("alert"),
    )


__all__ = ["ADMIN_HEADER", "ALERTS_PATH", "FAULTS_PATH", "Administered", "build_alert"]
__all__ += ["register_admin"]
