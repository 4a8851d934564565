"""Action keys: intent → call → outcome, so the same action never reaches CloudStack twice.

The intent is recorded (atomically: KV ``create``) before the external call and the outcome
after it.  A redelivered event finds the outcome and gets it back without a call.  A crash
between call and record leaves an intent without outcome; the next attempt asks
``reconcile`` (for CloudStack: "is there a resource tagged ``csfabric:key=<key>``?") and
records what it finds instead of calling again.  An intent younger than ``stale_after`` is
someone else's call in flight: the caller gets a :class:`TransientError` and retries later.
KV calls ride out broker hiccups (a leader election) with :func:`~.bus.retry_broker`, so a
failover does not use up an event's deliveries.  ``stale_after`` must exceed the request
timeout, or a slow answer to a claim could arrive after a retry judged it stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from .bus import retry_broker
from .clock import Clock, RealClock
from .errors import TransientError

BUCKET = "csfabric_actions"

Source = Literal["call", "recorded", "reconciled"]


def action_key(*parts: str) -> str:
    """Deterministic key of an action: event id + decision, or policy + resource + window."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class ActionResult:
    key: str
    outcome: Any
    source: Source

    @property
    def executed(self) -> bool:
        """True only when this attempt made the external call."""
        return self.source == "call"


class ActionLedger:
    """The KV-backed record of action keys (bucket ``csfabric_actions``)."""

    def __init__(self, kv: KeyValue, *, clock: Clock | None = None, stale_after: float = 60.0):
        self.kv = kv
        self.clock = clock or RealClock()
        self.stale_after = stale_after

    async def run(
        self,
        key: str,
        call: Callable[[], Awaitable[Any]],
        *,
        reconcile: Callable[[], Awaitable[Any | None]] | None = None,
    ) -> ActionResult:
        """Run ``call`` at most once for ``key``; its JSON-able result is the recorded outcome."""
        now = self.clock.now()
        intent = self._encode({"state": "intent", "at": now.isoformat()})
        try:
            revision = await retry_broker(lambda: self.kv.create(key, intent), what="record intent")
        except KeyWrongLastSequenceError:
            found = await self._resume(key, now, reconcile)
            if isinstance(found, ActionResult):
                return found
            revision = found
        outcome = await call()
        await self._record(key, outcome, revision)
        return ActionResult(key, outcome, "call")

    async def outcome(self, key: str) -> Any | None:
        entry = await self._get(key)
        return None if entry is None or entry[0].get("state") != "done" else entry[0]["outcome"]

    async def _resume(
        self, key: str, now: datetime, reconcile: Callable[[], Awaitable[Any | None]] | None
    ) -> ActionResult | int:
        """An entry exists: return its outcome, reconcile it, or claim it (its revision)."""
        entry = await self._get(key)
        if entry is None:
            raise TransientError(f"action {key[:12]}: entry vanished while reading, retry")
        record, revision = entry
        if record.get("state") == "done":
            return ActionResult(key, record.get("outcome"), "recorded")
        if reconcile is not None:
            found = await reconcile()
            if found is not None:
                await self._record(key, found, revision)
                return ActionResult(key, found, "reconciled")
        age = (now - datetime.fromisoformat(record["at"])).total_seconds()
        if age < self.stale_after:
            raise TransientError(f"action {key[:12]} is in flight ({age:.0f}s old), retry later")
        # A stale intent whose call left no trace: claim it and call.
        claim = self._encode({"state": "intent", "at": now.isoformat()})
        try:
            return await retry_broker(
                lambda: self.kv.update(key, claim, last=revision), what="claim intent"
            )
        except KeyWrongLastSequenceError:
            raise TransientError(f"action {key[:12]} was claimed concurrently, retry") from None

    async def _record(self, key: str, outcome: Any, revision: int) -> None:
        done = {"state": "done", "at": self.clock.now().isoformat(), "outcome": outcome}
        await retry_broker(
            lambda: self.kv.update(key, self._encode(done), last=revision), what="record outcome"
        )

    async def _get(self, key: str) -> tuple[dict[str, Any], int] | None:
        try:
            entry = await retry_broker(lambda: self.kv.get(key), what="read action")
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return json.loads(entry.value), int(entry.revision or 0)

    @staticmethod
    def _encode(record: dict[str, Any]) -> bytes:
        return json.dumps(record, separators=(",", ":"), default=str).encode()


__all__ = ["BUCKET", "ActionLedger", "ActionResult", "action_key"]
