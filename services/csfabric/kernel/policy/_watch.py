"""A live in-memory view of the policy store, for services.

:class:`PolicyWatcher` follows the whole ``csfabric_policies`` bucket with a KV watch, so a
service reads its policies from memory and sees an ``apply``, a ``policy pause`` or a
``pause --all`` within milliseconds — no restart, no polling.

A watch is an ephemeral consumer: a NATS server restart loses it, and nats-py re-creates
it only after two missed heartbeats (~10 s, and not at all if that attempt fails).  A kill
switch cannot wait that long, so the watcher starts a fresh watch (a full resync) as soon
as the connection has reconnected or the old watch has died.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import ValidationError

from csfabric.kernel._logs import get_logger
from csfabric.kernel.bus import Bus
from csfabric.kernel.errors import ConfigError
from csfabric.kernel.policy._read import GLOBAL_PAUSE_KEY, POLICY_BUCKET, GlobalPause, StoredPolicy

log = get_logger(__name__)

ChangeCallback = Callable[[str, StoredPolicy | GlobalPause | None], object]


class PolicyWatcher:
    """Every policy in memory, kept current by a KV watch on the whole bucket.

    ``start()`` returns once the stored values are loaded, so a service that starts
    acting afterwards never acts on "no policy yet" by mistake.  ``changed`` is set after
    every update (clear it before waiting); ``on_change`` callbacks get the key and the
    new value (None when deleted).
    """

    def __init__(self, bus: Bus, *, check_interval: float = 0.25) -> None:
        self.bus = bus
        self.check_interval = check_interval
        self.changed = asyncio.Event()
        self.revision = 0  # the highest KV revision seen: "has the watcher caught up?"
        self.resyncs = 0
        self._policies: dict[str, StoredPolicy] = {}
        self._pause: GlobalPause | None = None
        self._revisions: dict[str, int] = {}
        self._callbacks: list[ChangeCallback] = []
        self._kv: KeyValue | None = None
        self._watch: KeyValue.KeyWatcher | None = None
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._reconnects = 0

    async def start(self) -> None:
        self._kv = await self.bus.key_value(POLICY_BUCKET)
        await self._resync()
        self._supervisor = asyncio.create_task(self._supervise(), name="policy-watcher")

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        await self._close_watch()

    def on_change(self, callback: ChangeCallback) -> None:
        self._callbacks.append(callback)

    def get(self, kind: str, name: str) -> StoredPolicy | None:
        return self._policies.get(f"{kind}.{name}")

    def all(self, kind: str | None = None) -> list[StoredPolicy]:
        return sorted(
            (p for p in self._policies.values() if kind is None or p.kind == kind),
            key=lambda p: p.key,
        )

    @property
    def global_pause(self) -> GlobalPause | None:
        return self._pause

    @property
    def global_paused(self) -> bool:
        return self._pause is not None and self._pause.paused

    async def _resync(self) -> None:
        """Start a watch: every current value first (then a None marker), then updates."""
        assert self._kv is not None
        self._reconnects = self.bus.nc.stats["reconnects"]
        watch = await self._kv.watchall()
        seen: set[str] = set()
        try:
            async with asyncio.timeout(10):
                async for entry in watch:
                    if entry is None:
                        break
                    seen.add(entry.key)
                    self._update(entry)
        except BaseException:
            with contextlib.suppress(Exception):
                await watch.stop()  # type: ignore[no-untyped-call]
            raise
        # Keys gone while we were not watching (a purged delete marker leaves no entry).
        for key in {*self._revisions} - seen:
            self._set(key, None)
        self._watch = watch
        self._reader = asyncio.create_task(self._follow(watch), name="policy-watch")

    async def _supervise(self) -> None:
        while True:
            # Wall time on purpose: this watches a socket, not fabric time.
            await asyncio.sleep(self.check_interval)
            dead = self._reader is None or self._reader.done()
            if not dead and self.bus.nc.stats["reconnects"] == self._reconnects:
                continue
            try:
                await self._close_watch()
                await self._resync()
                self.resyncs += 1
                log.info("policy watch re-established (resync %d)", self.resyncs)
            except Exception as exc:  # NATS still away: try again at the next check
                log.warning("policy watch not re-established yet: %s", exc)

    async def _close_watch(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._watch is not None:
            with contextlib.suppress(Exception):  # the old subscription may be gone already
                await self._watch.stop()  # type: ignore[no-untyped-call]
        self._reader = self._watch = None

    async def _follow(self, watch: KeyValue.KeyWatcher) -> None:
        async for entry in watch:
            if entry is not None:
                self._update(entry)

    def _update(self, entry: KeyValue.Entry) -> None:
        key, revision = entry.key, entry.revision or 0
        self.revision = max(self.revision, revision)
        if revision and self._revisions.get(key) == revision:
            return  # a resync re-reads unchanged values: no news for listeners
        value: StoredPolicy | GlobalPause | None = None
        if entry.operation not in (KV_DEL, KV_PURGE) and entry.value:
            try:
                if key == GLOBAL_PAUSE_KEY:
                    value = GlobalPause.model_validate_json(entry.value)
                else:
                    policy = StoredPolicy.model_validate_json(entry.value)
                    policy.spec()  # parse once here, not on every gate check
                    value = policy
            except (ValidationError, ConfigError) as exc:
                # Acting on a value we cannot read would be a guess: a policy is treated as
                # absent, and an unreadable kill switch as ON.
                log.warning("policy store key %s unreadable: %s", key, exc)
                if key == GLOBAL_PAUSE_KEY:
                    value = GlobalPause(paused=True, by="(unreadable)", at=self.bus.clock.now())
        self._set(key, value, revision)

    def _set(self, key: str, value: StoredPolicy | GlobalPause | None, revision: int = 0) -> None:
        if revision and value is not None:
            self._revisions[key] = revision
        else:
            self._revisions.pop(key, None)
        if key == GLOBAL_PAUSE_KEY:
            self._pause = value if isinstance(value, GlobalPause) else None
        elif isinstance(value, StoredPolicy):
            self._policies[key] = value
        else:
            self._policies.pop(key, None)
        for callback in self._callbacks:
            try:
                callback(key, value)
            except Exception:  # one faulty listener must not stop the others or the watch
                log.exception("policy change callback failed for %s", key)
        self.changed.set()


__all__ = ["ChangeCallback", "PolicyWatcher"]
