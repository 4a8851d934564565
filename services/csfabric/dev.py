"""``csfabric dev``: a nats-server and every registered service, supervised, on 127.0.0.1.

One process tree: this supervisor, its own ``nats-server`` (unless ``CSFABRIC_NATS_URL``
is set) and one ``csfabric run <service>`` child per registered service.  A child that
exits is restarted with exponential backoff; so is the nats-server.  ``dev.json`` in the
state directory tells every other ``csfabric`` command where things are; it is written
atomically with mode 0600 (later it holds CloudStack keys) and removed at shutdown.
Stdout carries exactly one line, ``csfabric dev ready: {json}`` (endpoints, never keys), so
scripts and tests can wait for it; logs go to stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from csfabric.kernel.clock import parse_clock, scaled_spec
from csfabric.kernel.errors import ConfigError
from csfabric.kernel.logs import redact, setup_logging
from csfabric.kernel.natsserver import HOST, NatsServerProcess, find_nats_server
from csfabric.kernel.registry import available
from csfabric.kernel.settings import DEV_FILE, StreamLimits
from csfabric.kernel.streams import ensure_streams

log = logging.getLogger("csfabric.dev")

DEFAULT_NATS_PORT = 14222
DEFAULT_METRICS_PORT = 19100
READY_PREFIX = "csfabric dev ready: "
# What the ready line may show: endpoints only.  dev.json itself later also holds keys.
READY_KEYS = (
    "nats_url",
    "state_dir",
    "clock",
    "metrics",
    "cloudstack_endpoint",
    "gateway_url",
    "webhook_url",
)
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
STABLE_AFTER = 30.0  # a child that ran this long starts its backoff afresh
_USERINFO = re.compile(r"(?P<scheme>\w+://)(?P<user>[^:/@\s,]*)(?P<password>:[^@\s,]*)?@")


@dataclass
class DevOptions:
    state_dir: Path
    nats_port: int = DEFAULT_NATS_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    time_scale: float | None = None
    stop_timeout: float = 10.0
    # name → argv, instead of `python -m csfabric.cli run <name>` for each registered service
    commands: dict[str, list[str]] | None = None


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    metrics_url: str
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0


@dataclass
class DevSupervisor:
    options: DevOptions
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    nats_url: str = ""
    clock: str = "real"
    nats: NatsServerProcess | None = None
    children: list[Child] = field(default_factory=list)
    _watchers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def dev_file(self) -> Path:
        return self.options.state_dir / DEV_FILE

    async def start(self) -> dict[str, Any]:
        """Bring everything up and publish ``dev.json``; returns its content."""
        state = self.options.state_dir
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        _refuse_second_instance(self.dev_file)
        scale = self.options.time_scale
        self.clock = scaled_spec(scale) if scale else os.environ.get("CSFABRIC_CLOCK") or "real"
        parse_clock(self.clock)  # a bad value fails here, not in every child
        external = os.environ.get("CSFABRIC_NATS_URL")
        if external:
            self.nats_url = external
        else:
            port = self.options.nats_port
            if not _port_free(port):
                raise ConfigError(
                    f"port {port} on {HOST} is in use (another csfabric dev?); pass --nats-port "
                    "or set CSFABRIC_NATS_URL to use a running server"
                )
            self.nats = NatsServerProcess(port, state / "nats", binary=find_nats_server())
            await self.nats.start()
            self.nats_url = self.nats.url
            self._watchers.append(asyncio.create_task(self._watch_nats(), name="watch:nats"))
        streams = await _ensure_streams(self.nats_url)
        log.info("streams ready", extra={"streams": streams})
        self.children = self._plan_children()
        for child in self.children:
            self._watchers.append(asyncio.create_task(self._supervise(child), name=child.name))
        return self.write_dev_file()

    def _plan_children(self) -> list[Child]:
        commands = self.options.commands
        if commands is None:
            commands = {
                name: [sys.executable, "-m", "csfabric.cli", "run", name] for name in available()
            }
        children, port = [], self.options.metrics_port
        for name, argv in commands.items():
            while not _port_free(port):
                port += 1
            env = dict(os.environ)
            env.update(
                CSFABRIC_NATS_URL=self.nats_url,
                CSFABRIC_STATE_DIR=str(self.options.state_dir),
                CSFABRIC_CLOCK=self.clock,
                CSFABRIC_OPS_HOST=HOST,
                CSFABRIC_OPS_PORT=str(port),
            )
            children.append(Child(name, argv, env, f"http://{HOST}:{port}"))
            port += 1
        return children

    def write_dev_file(self) -> dict[str, Any]:
        content: dict[str, Any] = {
            "nats_url": self.nats_url,
            "state_dir": str(self.options.state_dir),
            "clock": self.clock,
            "metrics": {child.name: child.metrics_url for child in self.children},
            # Filled by later issues (simulator, gateway, ingest webhook receiver).
            "cloudstack_endpoint": None,
            "gateway_url": None,
            "webhook_url": None,
            "pid": os.getpid(),
            "nats_pid": self.nats.pid if self.nats is not None else None,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        fd, tmp = tempfile.mkstemp(dir=self.options.state_dir, prefix=f".{DEV_FILE}.")
        try:
            # Permissions before the content and before the name becomes visible.
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(content, out, indent=2, sort_keys=True)
                out.write("\n")
            os.replace(tmp, self.dev_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return content

    async def _supervise(self, child: Child) -> None:
        delay = BACKOFF_FIRST
        while not self.stop.is_set():
            started = time.monotonic()
            code: int | str
            try:
                # Children log to our stderr; stdout stays free for the ready line.
                child.proc = await asyncio.create_subprocess_exec(
                    *child.argv, env=child.env, stdin=asyncio.subprocess.DEVNULL, stdout=2
                )
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

    async def _watch_nats(self) -> None:
        assert self.nats is not None
        delay = BACKOFF_FIRST
        while not self.stop.is_set():
            await self._sleep_unless_stopped(0.5)
            if self.nats.running or self.stop.is_set():
                continue
            log.warning("nats-server exited; restarting in %.1fs", delay)
            await self._sleep_unless_stopped(delay)
            if self.stop.is_set():
                return
            try:
                await self.nats.start()
                self.write_dev_file()  # its pid changed
                log.warning("nats-server restarted", extra={"pid": self.nats.pid})
                delay = BACKOFF_FIRST
            except Exception as exc:
                log.error("nats-server restart failed: %s", exc)
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
        if self.nats is not None:
            await self.nats.stop(self.options.stop_timeout)
        log.info("stopped")


def mask_url(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (for output; dev.json keeps it)."""

    def hide(match: re.Match[str]) -> str:
        # user:password keeps the user; a lone userinfo is a token and goes entirely.
        user = match["user"] if match["password"] else ""
        return f"{match['scheme']}{user}{':' if user else ''}***@"

    return _USERINFO.sub(hide, url)


async def connect_once(url: str, timeout: float = 2.0) -> Client:  # noqa: ASYNC109
    """Connect without retrying forever (unlike Bus.connect): a wrong URL should fail fast.

    Raises :class:`ConfigError` naming the last connection error, with the URL masked.
    """
    errors: list[Exception] = []

    async def remember(exc: Exception) -> None:
        errors.append(exc)

    servers = [u.strip() for u in url.split(",") if u.strip()]
    try:
        # nats-py tries each server at least twice before giving up (it only drops a
        # server once its attempts exceed max_reconnect_attempts, and 0 means never).
        return await asyncio.wait_for(
            nats.connect(
                servers,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.05,
                connect_timeout=timeout,
                error_cb=remember,
                name="csfabric-cli",
            ),
            timeout * 2,
        )
    except Exception as exc:
        last = errors[-1] if errors else exc
        reason = str(last) or type(last).__name__
        raise ConfigError(f"cannot reach NATS at {mask_url(url)}: {reason}") from None


async def _ensure_streams(url: str) -> dict[str, str]:
    nc = await connect_once(url)
    try:
        return await ensure_streams(nc.jetstream(timeout=5.0), StreamLimits())
    finally:
        await nc.close()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _refuse_second_instance(dev_file: Path) -> None:
    """Two supervisors on one state dir would share a JetStream store: refuse the second."""
    try:
        pid = int(json.loads(dev_file.read_text())["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return  # no dev.json, or its supervisor is gone: a leftover from a crash
    if pid != os.getpid() and b"csfabric" in cmdline:
        raise ConfigError(
            f"csfabric dev is already running with state dir {dev_file.parent} (pid {pid}); "
            "stop it or pass another --state-dir"
        )


async def run_dev(options: DevOptions) -> int:
    """Run until SIGTERM/SIGINT; the exit code is 0 after a clean stop, 1 if startup failed."""
    setup_logging("dev", os.environ.get("CSFABRIC_LOG_LEVEL", "INFO"))
    supervisor = DevSupervisor(options)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, supervisor.stop.set)
    startup = asyncio.create_task(supervisor.start())
    stopped = asyncio.create_task(supervisor.stop.wait())
    try:
        await asyncio.wait({startup, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if startup.done():
            content = startup.result()
            ready = {key: content[key] for key in READY_KEYS}
            ready["nats_url"] = mask_url(ready["nats_url"])
            log.info(
                "ready", extra={"nats_url": ready["nats_url"], "services": len(content["metrics"])}
            )
            print(READY_PREFIX + json.dumps(ready, sort_keys=True), flush=True)
            await stopped
        return 0
    except Exception as exc:
        print(f"csfabric dev: {redact(str(exc))}", file=sys.stderr, flush=True)
        return 1
    finally:
        startup.cancel()
        stopped.cancel()
        await asyncio.gather(startup, stopped, return_exceptions=True)
        await supervisor.shutdown()
        for signum in (signal.SIGTERM, signal.SIGINT):
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
