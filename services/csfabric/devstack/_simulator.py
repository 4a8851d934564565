"""The CloudStack simulator as a server child of ``csfabric dev``.

It runs as ``csfabric simulator`` in its own process (a crash in a command handler must
not take the supervisor down, and it is restarted like nats-server), on 127.0.0.1 with
the clock every child gets, seeded so its API keys survive restarts.  Its endpoint and
the fabric user's keys go into ``dev.json`` and, as ``CSFABRIC_CLOUDSTACK_*``, into every
service's environment.  Events feed ingest's webhook receiver (which may not be up: the
simulator retries and logs), ``listEvents`` always, and the ``--with`` brokers.

Settings (environment): ``CSFABRIC_SIMULATOR_PORT`` (18080), ``CSFABRIC_SIMULATOR_SEED``
(0), ``CSFABRIC_SIMULATOR_WEBHOOK_URL`` (ingest's receiver; empty: no webhook feed).  A
``CSFABRIC_CLOUDSTACK_ENDPOINT`` already set means a real CloudStack: no simulator starts.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

from csfabric.devstack._extras import Extras, port_free, require_port
from csfabric.devstack._natsserver import HOST
from csfabric.devstack._servers import LocalServer
from csfabric.kernel import ConfigError

DEFAULT_SIMULATOR_PORT = 18080
DEFAULT_INGEST_WEBHOOK_URL = f"http://{HOST}:18091/webhook"
KEYS_FILE = "simulator-keys.json"  # written by the simulator itself
FABRIC_USER = "csfabric"  # the admin account's API user whose events mark fabric actions


class SimulatorServer(LocalServer):
    name = "simulator"

    def __init__(
        self,
        state_dir: Path,
        port: int,
        clock: str,
        *,
        seed: int = 0,
        webhook_url: str | None = DEFAULT_INGEST_WEBHOOK_URL,
        feeds: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(state_dir / "simulator")
        self.state_dir, self.port, self.clock, self.seed = state_dir, port, clock, seed
        self.webhook_url = webhook_url
        self.feeds = dict(feeds or {})  # rabbitmq_url / kafka_bootstrap of --with
        self.secret_file = self.data_dir / "webhook-secret"
        self.publish: dict[str, str] | None = None  # where endpoints() go once it answers
        self.env: dict[str, str] = {}  # what the supervisor adds (CSFABRIC_LOG_FORMAT)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}/client/api"

    async def start(self, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        await super().start(timeout)
        if self.publish is not None:
            self.publish.update(self.endpoints())

    def environment(self) -> dict[str, str]:
        # It stops when we are gone, even after a SIGKILL: LocalServer is tied to us.
        return {**os.environ, **self.env, "CSFABRIC_CLOCK": self.clock}

    def prepare(self) -> None:
        # A stable webhook secret, so a receiver configured once keeps verifying.
        if not self.secret_file.exists():
            fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(32))
        # Forget keys an earlier run left for this endpoint: answers() waits for fresh ones.
        path = self.state_dir / KEYS_FILE
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if known.pop(self.endpoint, None) is not None:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(known, out, indent=2)

    def command(self) -> list[str]:
        argv = [
            sys.executable, "-m", "csfabric.cli", "simulator", "--host", HOST,
            "--port", str(self.port), "--seed", str(self.seed),
            "--state-dir", str(self.state_dir),
        ]  # fmt: skip
        if self.webhook_url:
            argv += ["--webhook", self.webhook_url, "--webhook-secret-file", str(self.secret_file)]
        if "rabbitmq_url" in self.feeds:
            argv += ["--rabbitmq", self.feeds["rabbitmq_url"]]
        if "kafka_bootstrap" in self.feeds:
            argv += ["--kafka", self.feeds["kafka_bootstrap"]]
        return argv

    def keys(self) -> dict[str, dict[str, str]] | None:
        try:
            found = json.loads((self.state_dir / KEYS_FILE).read_text()).get(self.endpoint)
        except (OSError, ValueError, AttributeError):
            return None
        return found if isinstance(found, dict) else None

    async def answers(self) -> bool:
        # The simulator writes its keys right after it starts listening.
        return self.keys() is not None

    def endpoints(self) -> dict[str, str]:
        """``dev.json`` entries: the endpoint and the fabric user's keys."""
        keys = self.keys() or {}
        pair = keys.get(FABRIC_USER) or keys.get("admin")
        if pair is None:
            raise ConfigError(f"the simulator at {self.endpoint} wrote no keys for {FABRIC_USER}")
        return {
            "cloudstack_endpoint": self.endpoint,
            "cloudstack_key": pair["apikey"],
            "cloudstack_secret": pair["secretkey"],
            "cloudstack_webhook_secret_file": str(self.secret_file),
        }


async def add_simulator(extras: Extras, state_dir: Path, clock: str, port: int | None) -> None:
    """Add the simulator to ``extras`` (last: the brokers it feeds start first), unless a
    CloudStack is configured.  Once it answers, its endpoints join ``extras.endpoints``."""
    if os.environ.get("CSFABRIC_CLOUDSTACK_ENDPOINT"):
        return
    try:
        port = port or int(os.environ.get("CSFABRIC_SIMULATOR_PORT") or DEFAULT_SIMULATOR_PORT)
        seed = int(os.environ.get("CSFABRIC_SIMULATOR_SEED") or 0)
    except ValueError as exc:
        raise ConfigError(f"CSFABRIC_SIMULATOR_PORT/SEED: {exc}") from None
    # The simulator of a `csfabric dev` killed a moment ago may still hold the port: it
    # got SIGTERM when its parent died (devstack._lifeline) and is closing.
    for _ in range(30):
        if port_free(port):
            break
        await asyncio.sleep(0.1)
    require_port(port, "--simulator-port or set CSFABRIC_SIMULATOR_PORT")
    webhook = os.environ.get("CSFABRIC_SIMULATOR_WEBHOOK_URL", DEFAULT_INGEST_WEBHOOK_URL)
    simulator = SimulatorServer(
        state_dir, port, clock, seed=seed, webhook_url=webhook or None, feeds=extras.endpoints
    )
    simulator.publish = extras.endpoints
    if webhook:
        # Where the simulator delivers: ingest's receiver, which dev.json names for users.
        extras.endpoints["webhook_url"] = webhook
    extras.servers.append(simulator)


__all__ = ["DEFAULT_SIMULATOR_PORT", "SimulatorServer", "add_simulator"]
