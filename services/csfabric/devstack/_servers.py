"""The server children of ``csfabric dev --with …``: tansu (Kafka protocol) and PowerDNS.

Both run on 127.0.0.1 and are supervised like the nats-server; process handling is the
kernel's :class:`~csfabric.devstack._process.ManagedProcess`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import struct
from pathlib import Path
from typing import Protocol

from csfabric.devstack._natsserver import HOST
from csfabric.devstack._process import ManagedProcess


class Supervised(Protocol):
    """What the supervisor needs of a server it restarts (nats-server, tansu, PowerDNS)."""

    @property
    def running(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...

    async def start(self) -> None: ...


class LocalServer(ManagedProcess):
    """A server child of ``csfabric dev``; ``name`` names its log and its errors."""

    name = "server"
    tied_to_parent = True

    @property
    def label(self) -> str:  # type: ignore[override]
        return self.name


class TansuServer(LocalServer):
    """A memory-only Kafka-protocol broker; topics are created on first use."""

    name = "tansu"

    def __init__(self, data_dir: Path, port: int, binary: str) -> None:
        super().__init__(data_dir)
        self.port, self.binary = port, binary

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def command(self) -> list[str]:
        listener = f"tcp://{HOST}:{self.port}"
        return [
            self.binary, "broker", "--listener-url", listener,
            "--advertised-listener-url", listener, "--storage-engine", "memory://tansu/",
        ]  # fmt: skip

    async def answers(self) -> bool:
        # A Kafka ApiVersions v0 request: an open port alone does not mean it serves yet.
        request = struct.pack(">hhih", 18, 0, 7, -1)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), 1)
            try:
                writer.write(struct.pack(">i", len(request)) + request)
                head = await asyncio.wait_for(reader.readexactly(10), 1)
            finally:
                writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return False
        _size, correlation, error = struct.unpack(">iih", head)
        return bool(correlation == 7 and error == 0)


class PowerDnsServer(LocalServer):
    """``pdns_server`` with the sqlite3 backend and its HTTP API, both on 127.0.0.1.

    All settings, the API key included, go into ``pdns.conf`` (mode 0600) in its own
    config dir: the key stays out of ``ps`` output, and the machine's ``/etc/powerdns``
    is never read.
    """

    name = "pdns"

    def __init__(
        self, data_dir: Path, api_port: int, dns_port: int, binary: str, schema: Path
    ) -> None:
        super().__init__(data_dir)
        self.api_port, self.dns_port = api_port, dns_port
        self.binary, self.schema = binary, schema
        self.api_key = secrets.token_urlsafe(24)
        self.database = data_dir / "pdns.sqlite3"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    def prepare(self) -> None:
        if not self.database.exists():
            with sqlite3.connect(self.database) as db:
                db.executescript(self.schema.read_text())
        settings = {
            "launch": "gsqlite3",
            "gsqlite3-database": str(self.database),
            "api": "yes",
            "api-key": self.api_key,
            "webserver": "yes",
            "webserver-address": HOST,
            "webserver-port": str(self.api_port),
            "webserver-allow-from": "127.0.0.0/8",
            "local-address": HOST,
            "local-port": str(self.dns_port),
            "socket-dir": str(self.data_dir),
            # No caches: a record changed through the API shows in the very next answer.
            "cache-ttl": "0",
            "negquery-cache-ttl": "0",
            "query-cache-ttl": "0",
        }
        conf = self.data_dir / "pdns.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{key}={value}\n" for key, value in settings.items())

    def command(self) -> list[str]:
        return [self.binary, f"--config-dir={self.data_dir}", "--daemon=no", "--guardian=no"]

    async def answers(self) -> bool:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=1)
        headers = {"X-API-Key": self.api_key}
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.get(f"{self.url}/api/v1/servers/localhost", headers=headers) as response,
            ):
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False


__all__ = ["LocalServer", "PowerDnsServer", "Supervised", "TansuServer"]
