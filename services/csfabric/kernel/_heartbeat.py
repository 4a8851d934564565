"""Heartbeats: every running service instance announces itself in a KV bucket with a TTL.

``csfabric status`` reads bucket ``csfabric_status`` to list what is running.  Each
instance owns one key, ``<service>.<instance>``, refreshed every few seconds; the bucket's
TTL (30 s) makes the key of a crashed or partitioned instance vanish by itself, and a
clean stop deletes it at once.  The heartbeat is observability, not coordination (leases
do that), so a failed refresh is logged and retried, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from nats.js.kv import KeyValue

from csfabric.kernel._logs import get_logger
from csfabric.kernel.bus import Bus

log = get_logger(__name__)

BUCKET = "csfabric_status"
TTL = 30.0
INTERVAL = 5.0
# KV keys allow [-/_=.a-zA-Z0-9]; a dot separates tokens, so it is replaced too: the key
# must stay exactly two tokens, service and instance.
_NOT_KEY_CHAR = re.compile(r"[^-_=a-zA-Z0-9]+")


def key_token(text: str) -> str:
    """``text`` as one KV key token: runs of other characters (dots too) become ``-``."""
    return _NOT_KEY_CHAR.sub("-", text).strip("-") or "unnamed"


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _package_version() -> str:
    # Read from the installed metadata: the kernel imports nothing else of ours.
    try:
        return version("csfabric")
    except PackageNotFoundError:  # a source tree without an install
        return "0.0.0"


def _wall_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Heartbeat:
    """Keeps ``<service>.<instance>`` fresh in ``csfabric_status`` between start() and stop()."""

    def __init__(
        self,
        bus: Bus,
        service: str,
        *,
        instance: str | None = None,
        interval: float = INTERVAL,
        ops_url: str | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.bus = bus
        self.service = service
        self.instance = key_token(instance or default_instance())
        self.key = f"{key_token(service)}.{self.instance}"
        self.interval = interval
        self.ops_url = ops_url
        self.warnings = warnings if warnings is not None else []  # read at every beat
        self.started = _wall_now()
        self._kv: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None

    def value(self) -> dict[str, object]:
        return {
            "service": self.service,
            "instance": self.instance,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": self.started,
            "seen": _wall_now(),
            "version": _package_version(),
            "ops_url": self.ops_url,
            "warnings": list(self.warnings),
        }

    async def start(self) -> None:
        """Open (or create) the bucket and beat once; a broker that stays away raises here."""
        self._kv = await self.bus.key_value(BUCKET, ttl=TTL)
        await self.beat()
        self._task = asyncio.create_task(self._run(), name=f"heartbeat:{self.key}")

    async def beat(self) -> None:
        assert self._kv is not None, "start() first"
        await self._kv.put(self.key, json.dumps(self.value()).encode())

    async def _run(self) -> None:
        while True:
            # Wall time on purpose, not the fabric clock: the bucket's TTL is enforced by the
            # server in wall time, so a scaled clock would beat too often and a stepped one
            # never, and the key would expire under a live service.
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away: the next beat retries; the TTL is 6 beats
                log.info("heartbeat %s failed: %s", self.key, type(exc).__name__)

    async def stop(self) -> None:
        """Stop beating and delete the key, so ``csfabric status`` drops us at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._kv is not None:
            with contextlib.suppress(Exception):  # gone anyway once the TTL passes
                await self._kv.delete(self.key)
            self._kv = None


__all__ = ["BUCKET", "INTERVAL", "TTL", "Heartbeat", "default_instance", "key_token"]
