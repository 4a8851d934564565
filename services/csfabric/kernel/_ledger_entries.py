"""How the action ledger keeps its records: one JSON entry per action key in KV.

Every write is compare-and-set on the key's revision, so of two deliveries of one event
only one moves an entry on; a writer whose answer was lost (a restart, a leader election)
recognises its own write by the claim's token.  The state machine that decides *which*
write to make is :class:`~csfabric.kernel._idempotency.ActionLedger`.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Literal

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from csfabric.kernel._clock import Clock
from csfabric.kernel._logs import redact
from csfabric.kernel.bus import retry_broker
from csfabric.kernel.errors import TransientError

REASON_CHARS = 200

State = Literal["intent", "done", "refused", "failed", "unknown"]

log = logging.getLogger(__name__)


class LedgerEntries:
    """Create, claim, record and settle the entries of bucket ``csfabric_actions``."""

    def __init__(self, kv: KeyValue, clock: Clock) -> None:
        self.kv = kv
        self.clock = clock

    async def create(self, key: str, token: str, now: datetime) -> int:
        """The first intent for ``key``; raises ``KeyWrongLastSequenceError`` if one exists."""
        intent = _encode({"state": "intent", "at": now.isoformat(), "token": token})
        return await retry_broker(lambda: self.kv.create(key, intent), what="record intent")

    async def claim(self, key: str, revision: int, token: str, now: datetime) -> int:
        claim = _encode({"state": "intent", "at": now.isoformat(), "token": token})
        try:
            return await retry_broker(
                lambda: self.kv.update(key, claim, last=revision), what="claim intent"
            )
        except KeyWrongLastSequenceError:
            entry = await self.get(key)
            if entry is not None and entry[0].get("token") == token:
                return entry[1]  # our claim landed; its answer was lost
            raise TransientError(f"action {key[:12]} was claimed concurrently, retry") from None

    async def record(self, key: str, outcome: Any, revision: int, token: str) -> None:
        done = {"state": "done", "at": self.clock.now().isoformat(), "token": token}
        done["outcome"] = outcome
        try:
            await retry_broker(
                lambda: self.kv.update(key, _encode(done), last=revision),
                what="record outcome",
            )
        except KeyWrongLastSequenceError:
            entry = await self.get(key)
            if entry is not None and entry[0].get("state") == "done":
                return  # ours with a lost answer, or another attempt reconciled it first
            log.warning("action %s: outcome not recorded, the key was claimed again", key[:12])

    async def settle(
        self, key: str, revision: int, state: State, error: BaseException, claimed: dict[str, str]
    ) -> None:
        """Record how a call failed; the caller re-raises whatever happens here."""
        reason = redact(f"{type(error).__name__}: {error}"[:REASON_CHARS])
        record = {"state": state, **claimed, "ended": self.clock.now().isoformat()}
        record["error"] = reason
        try:
            await retry_broker(
                lambda: self.kv.update(key, _encode(record), last=revision),
                what=f"record {state} call",
            )
        except KeyWrongLastSequenceError:
            log.info("action %s: %s call not recorded, another attempt moved on", key[:12], state)
        except TransientError:
            # The intent stays: the next attempt treats it as in flight, then reconciles.
            log.warning("action %s: %s call not recorded, NATS unavailable", key[:12], state)

    async def get(self, key: str) -> tuple[dict[str, Any], int] | None:
        try:
            entry = await retry_broker(lambda: self.kv.get(key), what="read action")
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return json.loads(entry.value), int(entry.revision or 0)


def _encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), default=str).encode()


__all__ = ["REASON_CHARS", "LedgerEntries", "State"]
