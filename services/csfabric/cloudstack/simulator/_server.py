"""The simulator's HTTP face: ``/client/api`` exactly as CloudStack's ApiServlet answers.

Order of checks follows ApiServer.verifyRequest: an unknown command is refused (432,
``errorresponse``) before the signature is looked at; then the signature (401, no
``cserrorcode``); then faults (S4's FaultPlan); then required parameters (431); then the
command, after ParamProcessWorker's uuid translation (an id naming nothing of its kind →
431, see ``_params``).  Async commands answer at once with a ``jobid`` and finish after
``job_latency`` seconds of fabric time (the kernel clock, so scaled and stepped clocks work);
a snapshot copy to another zone takes ``copy_latency`` more (``job_latency`` unless given).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from csfabric.cloudstack.simulator import commands  # noqa: F401  (importing registers them)
from csfabric.cloudstack.simulator._call import Call
from csfabric.cloudstack.simulator._emit import Emitter, EventSink
from csfabric.cloudstack.simulator._errors import (
    ApiError,
    auth_failed,
    missing_parameter,
    unknown_command,
)
from csfabric.cloudstack.simulator._jobs import JobRunner
from csfabric.cloudstack.simulator._params import translate
from csfabric.cloudstack.simulator._registry import COMMANDS
from csfabric.cloudstack.simulator._signing import verify_request
from csfabric.cloudstack.simulator._state import Account, User
from csfabric.cloudstack.simulator._world import World
from csfabric.kernel import SIMULATOR_KEYS_FILE as KEYS_FILE
from csfabric.kernel import Clock, RealClock

if TYPE_CHECKING:
    from csfabric.cloudstack.simulator._faults import FaultPlan

log = logging.getLogger("csfabric.simulator")
JSON_TYPE = "application/json; charset=UTF-8"


class Simulator:
    def __init__(
        self,
        world: World | None = None,
        *,
        clock: Clock | None = None,
        sinks: Sequence[EventSink] | None = None,
        faults: FaultPlan | None = None,
        job_latency: float = 0.5,
        copy_latency: float | None = None,
        state_dir: Path | str | None = None,
        tz: tzinfo = UTC,
    ) -> None:
        self.world = world if world is not None else World.demo(0)
        # A snapshot copy to another zone: fabric seconds, as long as a job by default.
        self.world.copy_latency = job_latency if copy_latency is None else copy_latency
        self.clock = clock or RealClock()
        self.faults = faults
        self.emitter = Emitter(self.world, self.clock, list(sinks or []), tz)
        self.jobs = JobRunner(self.world, self.emitter, job_latency)
        self.state_dir = Path(state_dir) if state_dir else None
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- keys -------------------------------------------------------------------------------

    def keys(self) -> dict[str, dict[str, str]]:
        return self.world.keys()

    def admin_secret(self) -> str:
        return self.world.admin.users[0].secretkey

    def _lookup(self, apikey: str) -> tuple[User, Account] | None:
        return self.world.user_by_apikey(apikey)

    def write_keys(self) -> Path | None:
        """Merge ``{url: keys}`` into ``<state_dir>/simulator-keys.json`` (mode 0600)."""
        if self.state_dir is None:
            return None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / KEYS_FILE
        existing: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            existing = json.loads(path.read_text())
        existing[self.url] = self.keys()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(existing, fh, indent=2)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        return path

    # -- dispatch ---------------------------------------------------------------------------

    async def dispatch(self, raw: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """One API request (already-decoded parameters) → (HTTP status, JSON body).

        This is also the in-process transport for benchmarks and tests.
        """
        name = raw.get("command")
        cmd = COMMANDS.get(name) if name else None
        if cmd is None:
            err = unknown_command() if name else auth_failed()
            return err.errorcode, {"errorresponse": err.body()}
        try:
            found: list[tuple[User, Account]] = []

            def secret_of(apikey: str) -> str | None:
                hit = self._lookup(apikey)
                if hit is None:
                    return None
                found.append(hit)
                return hit[0].secretkey

            verify_request(raw, secret_of, self.clock.now())
            user, account = found[-1]
            if self.faults is not None:
                await self.faults.before(cmd.name)
            params = {k.lower(): v for k, v in raw.items()}
            for req in cmd.required:
                if not params.get(req):
                    raise missing_parameter(cmd.name, req)
            translate(cmd, params, self.world)
            call = Call(cmd.name, params, self.world, user, account, self.emitter)
            if cmd.sync is not None:
                return 200, {cmd.response_name: await cmd.sync(call)}
            assert cmd.job is not None
            plan = await cmd.job(call)
            return 200, {cmd.response_name: await self.jobs.submit(cmd, call, plan)}
        except ApiError as err:
            return err.errorcode, {cmd.response_name: err.body()}

    async def _handle(self, request: web.Request) -> web.Response:
        raw: dict[str, str] = {}
        for key, value in request.query.items():
            raw.setdefault(key, value)
        if request.method == "POST":
            for key, field in (await request.post()).items():
                if isinstance(field, str):
                    raw.setdefault(key, field)
        try:
            status, body = await self.dispatch(raw)
        except Exception:  # a simulator bug must look like CloudStack's 530, not a crash
            log.exception("simulator failure on %s", raw.get("command"))
            name = f"{raw.get('command', 'error').lower()}response"
            status, body = 530, {name: ApiError(530, "Internal error", 4250).body()}
        return web.Response(
            status=status,
            text=json.dumps(body),
            content_type=None,
            headers={"Content-Type": JSON_TYPE},
        )

    # -- lifecycle --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("GET", "/client/api", self._handle)
        app.router.add_route("POST", "/client/api", self._handle)
        app.router.add_route("GET", "/client/api/", self._handle)
        app.router.add_route("POST", "/client/api/", self._handle)
        try:
            from csfabric.cloudstack.simulator._admin import register_admin
        except ImportError:  # admin endpoint is optional (ENGINEER S4's module)
            return app
        register_admin(app, self, self.admin_secret)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 8080) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.url = f"http://{host}:{port}/client/api"
        self.write_keys()
        return self.url

    async def stop(self) -> None:
        await self.jobs.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for sink in self.emitter.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        await asyncio.sleep(0)
