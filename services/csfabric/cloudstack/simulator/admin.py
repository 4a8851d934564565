"""The simulator's admin endpoint: ``/admin/faults``, to change faults while it runs.

``GET`` lists the faults in force (and how many errors each injected), ``POST`` sets one
(a fault object) or several (``{"faults": [...]}`` or a list), ``DELETE`` clears them all
or, with ``?command=X``, one.  Every call needs ``X-Admin-Key: <admin secret key>`` — the
root admin account's secret, the one credential that already lets a caller do anything
to this cloud — compared in constant time; anything else gets 401.  The key is never
logged, echoed or put in an error.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from csfabric.kernel.errors import ConfigError

from .faults import FaultPlan

log = logging.getLogger("csfabric.simulator.admin")
ADMIN_HEADER = "X-Admin-Key"
FAULTS_PATH = "/admin/faults"


class Administered(Protocol):
    """What the admin endpoint needs of the simulator."""

    faults: FaultPlan | None


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
    return plan


__all__ = ["ADMIN_HEADER", "FAULTS_PATH", "Administered", "register_admin"]
