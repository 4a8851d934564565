"""Blast-radius windows shared by every replica of a service and kept across restarts.

Event work runs on every replica, so a count kept in one process would let N replicas
act ``max`` times each per window, and a restart would forget the actions already taken.
:class:`KvBlastWindows` keeps each policy's window in the KV bucket ``csfabric_blast``
(key ``<kind>.<name>``, history 1): the value is the times of the policy's actions that
are still inside its window (so at most ``max`` of them).  Admitting an action is a
compare-and-set of that list (``create`` for the first, ``update(last=revision)`` after),
retried on conflict, so two replicas can never both take the last slot.

When the state cannot be read or written (NATS away, a timeout, an unreadable value) the
answer is :class:`BlastStateUnavailable`, and the gate refuses: destructive services must
not act on a budget they cannot see.  :class:`MemoryBlastWindows` is the one-process
stand-in for unit tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from csfabric.kernel.bus import Bus
from csfabric.kernel.policy.errors import BlastStateUnavailable

__all__ = [
    "BLAST_BUCKET",
    "BLAST_TTL",
    "BlastWindows",
    "KvBlastWindows",
    "MemoryBlastWindows",
]

log = logging.getLogger(__name__)

BLAST_BUCKET = "csfabric_blast"
# A key is rewritten at every admitted action and holds only times inside its window, so
# it may expire once its last write is older than the window: the TTL must be at least the
# longest window.  Longer windows are refused rather than silently forgotten.
BLAST_TTL = timedelta(days=366)
# Each conflict means another writer was admitted (or the window changed), so with W
# concurrent writers a check needs at most W attempts; past this the gate refuses.
ATTEMPTS = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Verdict(Protocol):
    @property
    def allowed(self) -> bool: ...


V = TypeVar("V", bound=_Verdict)
Judge = Callable[[Sequence[datetime]], V]


class BlastWindows(Protocol):
    async def admit(self, key: str, per: timedelta, now: datetime, judge: Judge[V]) -> V:
        """``judge(recent)`` over the actions of ``key`` within ``per`` before ``now``; when
        it allows, ``now`` is recorded atomically with that reading.  Raises
        :class:`BlastStateUnavailable` when the window cannot be seen."""
        ...


class MemoryBlastWindows:
    """Windows in this process only (unit tests, single-process tools)."""

    def __init__(self) -> None:
        self._acted: dict[str, list[datetime]] = {}

    async def admit(self, key: str, per: timedelta, now: datetime, judge: Judge[V]) -> V:
        recent = [t for t in self._acted.get(key, ()) if t > now - per]
        verdict = judge(recent)
        if verdict.allowed:
            recent.append(now)
        self._acted[key] = recent
        return verdict


class KvBlastWindows:
    """Windows in NATS KV, shared by every gate on the same NATS (see the module doc)."""

    def __init__(self, bus: Bus, *, attempts: int = ATTEMPTS) -> None:
        self.bus = bus
        self.attempts = attempts
        self._kv: KeyValue | None = None

    async def admit(self, key: str, per: timedelta, now: datetime, judge: Judge[V]) -> V:
        if self.bus.clock.to_real(per.total_seconds()) > BLAST_TTL.total_seconds():
            raise BlastStateUnavailable(f"window {per} is longer than the state is kept")
        if not self.bus.nc.is_connected:  # fail at once instead of waiting out a timeout
            raise BlastStateUnavailable("no NATS connection")
        try:
            return await self._admit(key, per, now, judge)
        except BlastStateUnavailable:
            raise
        except Exception as exc:  # whatever failed, the budget is unknown: refuse
            raise BlastStateUnavailable(type(exc).__name__) from exc

    async def _admit(self, key: str, per: timedelta, now: datetime, judge: Judge[V]) -> V:
        kv = await self._open()
        for _ in range(self.attempts):
            try:
                entry: KeyValue.Entry | None = await kv.get(key)
            except KeyNotFoundError:  # never written, expired, or deleted
                entry = None
            recent = [t for t in _decode(key, entry) if t > now - per]
            verdict = judge(recent)
            if not verdict.allowed:
                return verdict
            value = _encode([*recent, now])
            try:
                if entry is None:
                    await kv.create(key, value)
                else:
                    await kv.update(key, value, last=entry.revision)
            except KeyWrongLastSequenceError:
                continue  # another replica acted meanwhile: judge again on its write
            return verdict
        raise BlastStateUnavailable(f"{self.attempts} conflicting writes in a row")

    async def _open(self) -> KeyValue:
        # One attempt, not the bus's retries: a gate answers now, it does not wait for NATS.
        if self._kv is None:
            try:
                self._kv = await self.bus.js.key_value(BLAST_BUCKET)
            except BucketNotFoundError:
                config = KeyValueConfig(
                    bucket=BLAST_BUCKET,
                    history=1,
                    ttl=BLAST_TTL.total_seconds(),
                    storage=StorageType.FILE,
                )
                self._kv = await self.bus.js.create_key_value(config)
        return self._kv


def _encode(times: Sequence[datetime]) -> bytes:
    # Whole microseconds since the epoch: exact for datetimes, ~17 bytes per action.
    return json.dumps([(t - _EPOCH) // timedelta(microseconds=1) for t in times]).encode()


def _decode(key: str, entry: KeyValue.Entry | None) -> list[datetime]:
    if entry is None or not entry.value:
        return []
    try:
        values = json.loads(entry.value)
        return [_EPOCH + timedelta(microseconds=int(v)) for v in values]
    except (ValueError, TypeError, OverflowError) as exc:
        log.error("blast-radius window %s is unreadable; refusing its actions", key)
        raise BlastStateUnavailable(f"window {key} is unreadable") from exc
