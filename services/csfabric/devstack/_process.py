"""A local server child (nats-server, a Kafka-protocol broker, PowerDNS, the simulator).

Used by ``csfabric dev`` and the test harness.  The child is a plain
:class:`subprocess.Popen` rather than an asyncio subprocess: it writes only to a log file
(no pipes to read), and a Popen can be waited on synchronously, so :meth:`kill` really
returns after the process is gone and the object is not tied to the event loop that
started it.  Output is appended to ``log_path`` across restarts.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from csfabric.devstack._lifeline import tie_kwargs


class ManagedProcess:
    """Spawned, probed until it :meth:`answers`, stopped with SIGTERM then SIGKILL.

    Subclasses give :meth:`command` and :meth:`answers`; :meth:`prepare` and
    :meth:`environment` are optional.
    """

    label = "server"
    # Set by ``csfabric dev``: the server then ends with it, even after a SIGKILL
    # (:mod:`csfabric.devstack._lifeline`).  Test harnesses leave it off.
    tied_to_parent = False

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    async def answers(self) -> bool:
        """True once the server serves (an open port alone is often not enough)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Create what the server needs on disk before it starts (idempotent)."""

    def environment(self) -> dict[str, str] | None:
        """The child's environment; None inherits ours."""
        return None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.label}.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    # ASYNC109: a plain deadline reads better at call sites than asyncio.timeout() here.
    async def start(self, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        """Spawn the server and return once it answers; on failure nothing is left running."""
        if self.running:
            return
        argv = self.command()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.prepare()
        self._close_log()
        self._log = self.log_path.open("ab")
        tie: dict[str, Any] = tie_kwargs() if self.tied_to_parent else {}
        # ASYNC220: fork/exec takes microseconds; Popen is chosen on purpose (module doc).
        self._proc = subprocess.Popen(  # noqa: ASYNC220
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            **tie,
        )
        try:
            await self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise

    async def _wait_ready(self, timeout: float) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self._proc.returncode}; "
                    f"log tail:\n{self.log_tail()}"
                )
            if await self.answers():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.label} not ready after {timeout}s; log tail:\n{self.log_tail()}"
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

    async def restart(self, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        """Stop (if running) and start again with the same settings and data."""
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


__all__ = ["ManagedProcess"]
