"""The server children of ``csfabric dev --with …``: tansu (Kafka protocol) and PowerDNS.

Both run on 127.0.0.1 and are supervised like the nats-server.  A plain Popen for the
reasons given in :mod:`csfabric.kernel.natsserver`: output goes only to a log file, and
stopping does not depend on the event loop that started the process.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sqlite3
import struct
import subprocess
import time
from pathlib import Path
from typing import IO, Protocol

from csfabric.kernel.natsserver import HOST


class Supervised(Protocol):
    """What the supervisor needs of a server it restarts (nats-server, tansu, PowerDNS)."""

    @property
    def running(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...

    async def start(self) -> None: ...


class LocalServer:
    """A server child: spawned, probed until it answers, stopped with SIGTERM then SIGKILL.

    Output goes to ``<data_dir>/<name>.log``.
    """

    name = "server"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    async def answers(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """Create what the server needs on disk before it starts (idempotent)."""

    def environment(self) -> dict[str, str] | None:
        """The child's environment; None inherits ours."""
        return None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    async def start(self, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.prepare()
        self._close_log()
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(  # noqa: ASYNC220 -- see the class docstring
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
        )
        deadline = time.monotonic() + timeout
        while not await self.answers():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                code = self._proc.poll()
                await self.stop()
                state = f"exited with {code}" if code is not None else f"silent after {timeout}s"
                raise RuntimeError(f"{self.name} {state}; see {self.log_path}")
            await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


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
