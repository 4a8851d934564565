"""``csfabric dev``: a nats-server and every registered service, supervised, on 127.0.0.1.

One process tree: this supervisor, its own ``nats-server`` (unless ``CSFABRIC_NATS_URL``
is set), the servers ``--with`` asks for and one ``csfabric run <service>`` child per
registered service; the demo policies are applied before the services start (the parts
below the supervisor live in :mod:`csfabric.devstack`).  A child that exits is restarted
with exponential backoff; so are the servers.  ``dev.json`` in the state directory tells
every other ``csfabric`` command where things are; it is written atomically with mode 0600
(it holds keys) and removed at shutdown.
Stdout carries exactly one line, ``csfabric dev ready: {json}`` (endpoints, never keys), so
scripts and tests can wait for it; logs go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from csfabric.devstack._children import Child, plan_children, spawn
from csfabric.devstack._demo import DEMO_POLICIES, apply_demo_policies
from csfabric.devstack._extras import ExtraPorts, Extras, plan_extras, require_port
from csfabric.devstack._lifeline import Lifeline
from csfabric.devstack._nats import connect_once, ensure_streams_at, mask_url
from csfabric.devstack._natsserver import NatsServerProcess, find_nats_server
from csfabric.devstack._servers import Supervised
from csfabric.devstack._simulator import SimulatorServer, add_simulator
from csfabric.devstack._statefile import (
    EXTRA_KEYS,
    READY_PREFIX,
    ready_line,
    refuse_second_instance,
    write_private_json,
)
from csfabric.devstack.errors import MissingDependencyError
from csfabric.kernel import DEV_FILE, parse_clock, redact, scaled_spec, setup_logging

log = logging.getLogger("csfabric.devstack._supervisor")

DEFAULT_NATS_PORT = 14222
DEFAULT_METRICS_PORT = 19100
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
STABLE_AFTER = 30.0  # a child that ran this long starts its backoff afresh
# Closing the terminal (SIGHUP) stops as cleanly as Ctrl-C (children: devstack._lifeline).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass
class DevOptions:
    state_dir: Path
    nats_port: int = DEFAULT_NATS_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    time_scale: float | None = None
    stop_timeout: float = 10.0
    # name → argv, instead of `python -m csfabric.cli run <name>` for each registered service
    commands: dict[str, list[str]] | None = None
    extras: tuple[str, ...] = ()  # --with: "rabbitmq", "kafka", "powerdns"
    demo: bool = True
    demo_dir: Path = DEMO_POLICIES
    ports: ExtraPorts = field(default_factory=ExtraPorts)  # of the --with servers
    log_format: str | None = None  # json | text | auto (None: $CSFABRIC_LOG_FORMAT, else auto)


@dataclass
class DevSupervisor:
    options: DevOptions
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    nats_url: str = ""
    clock: str = "real"
    nats: NatsServerProcess | None = None
    children: list[Child] = field(default_factory=list)
    extras: Extras = field(default_factory=Extras)
    demo_policies: list[str] = field(default_factory=list)
    log_format: str | None = None  # what run_dev chose; every csfabric child logs the same
    _watchers: list[asyncio.Task[None]] = field(default_factory=list)
    _lifeline: Lifeline = field(default_factory=Lifeline)

    @property
    def dev_file(self) -> Path:
        return self.options.state_dir / DEV_FILE

    async def start(self) -> dict[str, Any]:
        """Bring everything up and publish ``dev.json``; returns its content."""
        state = self.options.state_dir
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        refuse_second_instance(self.dev_file)
        scale = self.options.time_scale
        self.clock = scaled_spec(scale) if scale else os.environ.get("CSFABRIC_CLOCK") or "real"
        parse_clock(self.clock)  # a bad value fails here, not in every child
        # Before anything starts, so a missing piece leaves nothing behind.
        self.extras = await plan_extras(self.options.extras, state, self.options.ports)
        await add_simulator(self.extras, state, self.clock, self.options.ports.simulator)
        external = os.environ.get("CSFABRIC_NATS_URL")
        if external:
            self.nats_url = external
        else:
            port = self.options.nats_port
            hint = " (another csfabric dev?)"
            require_port(port, "--nats-port or set CSFABRIC_NATS_URL to use that server", hint)
            self.nats = NatsServerProcess(port, state / "nats", binary=find_nats_server())
            self.nats.tied_to_parent = True
            await self.nats.start()
            self.nats_url = self.nats.url
            self._watch(self.nats, "nats-server")
        streams = await ensure_streams_at(self.nats_url)
        log.info("streams ready", extra={"streams": streams})
        if self.options.demo:
            self.demo_policies = await apply_demo_policies(
                self.nats_url, self.options.demo_dir, parse_clock(self.clock)
            )
        for server in self.extras.servers:
            if isinstance(server, SimulatorServer) and self.log_format:
                server.env["CSFABRIC_LOG_FORMAT"] = self.log_format
            await server.start()
            log.info("%s started", server.name, extra={"pid": server.pid})
            self._watch(server, server.name)
        env = {f"CSFABRIC_{key.upper()}": value for key, value in self.extras.endpoints.items()}
        env.update(
            CSFABRIC_NATS_URL=self.nats_url,
            CSFABRIC_STATE_DIR=str(state),
            CSFABRIC_CLOCK=self.clock,
        )
        if self.log_format:
            env["CSFABRIC_LOG_FORMAT"] = self.log_format
        self.children = plan_children(self.options.commands, self.options.metrics_port, env)
        for child in self.children:
            self._watchers.append(asyncio.create_task(self._supervise(child), name=child.name))
        return self.write_dev_file()

    def write_dev_file(self) -> dict[str, Any]:
        content: dict[str, Any] = {
            "nats_url": self.nats_url,
            "state_dir": str(self.options.state_dir),
            "clock": self.clock,
            "metrics": {child.name: child.metrics_url for child in self.children},
            # The gateway arrives with its issue; the simulator and webhook entries below.
            "cloudstack_endpoint": None,
            "gateway_url": None,
            "webhook_url": None,
            **{key: self.extras.endpoints.get(key) for key in EXTRA_KEYS},
            "pid": os.getpid(),
            "nats_pid": self.nats.pid if self.nats is not None else None,
            **{f"{server.name}_pid": server.pid for server in self.extras.servers},
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_private_json(self.dev_file, content)
        return content

    async def _supervise(self, child: Child) -> None:
        delay = BACKOFF_FIRST
        while not self.stop.is_set():
            started = time.monotonic()
            code: int | str
            try:
                child.proc = await spawn(child, self._lifeline)
            except OSError as exc:
                code = f"'{exc}' (not started)"
            else:
                log.info("started %s", child.name, extra={"pid": child.proc.pid})
                code = await child.proc.wait()
            if self.stop.is_set():
                return
            ran = time.monotonic() - started
            if ran >= STABLE_AFTER:
                delay = BACKOFF_FIRST
            child.restarts += 1
            log.warning(
                "service %s exited with code %s after %.1fs; restart #%d in %.1fs",
                child.name,
                code,
                ran,
                child.restarts,
                delay,
                extra={"service_name": child.name, "exit_code": code, "restarts": child.restarts},
            )
            await self._sleep_unless_stopped(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    def _watch(self, server: Supervised, name: str) -> None:
        task = asyncio.create_task(self._restart_when_gone(server, name), name=f"watch:{name}")
        self._watchers.append(task)

    async def _restart_when_gone(self, server: Supervised, name: str) -> None:
        delay = BACKOFF_FIRST
        while not self.stop.is_set():
            await self._sleep_unless_stopped(0.5)
            if server.running or self.stop.is_set():
                continue
            log.warning("%s exited; restarting in %.1fs", name, delay)
            await self._sleep_unless_stopped(delay)
            if self.stop.is_set():
                return
            try:
                await server.start()
                self.write_dev_file()  # its pid changed
                log.warning("%s restarted", name, extra={"pid": server.pid})
                delay = BACKOFF_FIRST
            except Exception as exc:
                log.error("%s restart failed: %s", name, exc)
                delay = min(delay * 2, BACKOFF_MAX)

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def shutdown(self) -> None:
        """Remove dev.json, stop children (SIGTERM, then SIGKILL), then the nats-server."""
        self.stop.set()
        log.info("stopping")
        with contextlib.suppress(OSError, ValueError):
            if json.loads(self.dev_file.read_text()).get("pid") == os.getpid():
                self.dev_file.unlink()
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        procs = [c.proc for c in self.children if c.proc is not None and c.proc.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(p.wait() for p in procs)), self.options.stop_timeout
            )
        except TimeoutError:
            for proc in procs:
                if proc.returncode is None:
                    log.warning("child %s ignored SIGTERM; killing it", proc.pid)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
        for server in self.extras.servers:
            await server.stop(self.options.stop_timeout)
        if self.nats is not None:
            await self.nats.stop(self.options.stop_timeout)
        self._lifeline.close()
        log.info("stopped")


async def run_dev(options: DevOptions) -> int:
    """Run until SIGTERM/SIGINT/SIGHUP; exit code 0 after a clean stop, 1 if startup failed,
    and 2 if something ``--with`` needs is not installed or not running."""
    level = os.environ.get("CSFABRIC_LOG_LEVEL", "INFO")
    supervisor = DevSupervisor(options)
    supervisor.log_format = setup_logging("dev", level, log_format=options.log_format)
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, supervisor.stop.set)
    startup = asyncio.create_task(supervisor.start())
    stopped = asyncio.create_task(supervisor.stop.wait())
    try:
        await asyncio.wait({startup, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if startup.done():
            content = startup.result()
            nats_url = mask_url(content["nats_url"])
            log.info("ready", extra={"nats_url": nats_url, "services": len(content["metrics"])})
            print(ready_line(content), flush=True)
            await stopped
        return 0
    except Exception as exc:
        print(f"csfabric dev: {redact(str(exc))}", file=sys.stderr, flush=True)
        # 2: install or start something, then retry
        return 2 if isinstance(exc, MissingDependencyError) else 1
    finally:
        startup.cancel()
        stopped.cancel()
        await asyncio.gather(startup, stopped, return_exceptions=True)
        await supervisor.shutdown()
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


__all__ = [
    "DEFAULT_METRICS_PORT",
    "DEFAULT_NATS_PORT",
    "READY_PREFIX",
    "DevOptions",
    "DevSupervisor",
    "connect_once",
    "mask_url",
    "run_dev",
]
