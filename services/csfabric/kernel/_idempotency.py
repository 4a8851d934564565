"""Action keys: intent → call → outcome, so the same action never reaches CloudStack twice.

Every key (bucket ``csfabric_actions``) moves through these states, each written with
compare-and-set on the key's revision, so two deliveries of one event never both call::

    (no key) ──create──▶ intent ──call returns──────────────────▶ done      (outcome kept)
                           ├── refused: PermanentError ─────────▶ refused   (re-raised, kept)
                           ├── failed, proving nothing ran ─────▶ failed    (next try calls)
                           └── outcome unknown ─────────────────▶ unknown   (next try reconciles)

* **done** — a redelivered event gets the recorded outcome back without a call.
* **refused** — the call raised a :class:`PermanentError` (CloudStack refused it, 4xx): it is
  re-raised for the consumer to dead-letter, and a redelivery raises :class:`ActionRefused`
  instead of calling again.
* **failed** — any other :class:`TransientError` means the call *proved* nothing happened
  (CloudStack answered 530/533/534…, the connection was refused before sending): the next
  attempt claims the key at once and calls again.
* **unknown** — an :class:`OutcomeUnknownError` (a mutating CloudStack command timed out or
  lost its connection after sending, a job timed out), the call deadline, a
  :class:`~.errors.LeaseLost` raised after the act (``acted``), or an exception the ledger
  cannot classify: the action may have happened.  The next attempt asks
  ``reconcile`` (for CloudStack: "is there a resource tagged ``csfabric:key=<key>``?") and
  records what it finds.  Only when nothing is found *and* the intent is older than
  ``stale_after`` — its call is over for sure — is it claimed and called again; until then
  the caller gets a :class:`~.errors.RetryLater` for the time left, which the consumer
  waits out without spending the event's attempts.  Without a ``reconcile`` step such an action is
  never re-sent: :class:`PermanentError`, for an operator to resolve.
* **intent** — a call in flight, or one left by a crash: treated like *unknown*.

The numbers, and why (fabric seconds; every deadline runs on the kernel clock):

* ``call_timeout`` 360 s (default ``0.8 * stale_after``): the deadline of ``call()``; the
  ledger cancels it then and records *unknown*.  It covers a CloudStack job:
  ``CloudStackClient.job`` waits up to ``job_timeout`` (300 s) after a submit of up to one
  request timeout (10 s) and its connect retries, plus the last poll.
* ``stale_after`` 450 s, above the call deadline by 90 s: an intent that old cannot belong
  to a call still running, with room for recording an outcome through a broker hiccup
  (:func:`~.bus.retry_broker` rides out ~15 s) and for clock skew between replicas.
* key TTL 7 days (``CSFABRIC_ACTION_KEY_TTL``, :func:`open_ledger`): at least the events
  stream's max age, so a redelivered or replayed event still finds its key.

What this asks of the consumer: a failed call is retried at the next delivery; an unknown
one is settled as soon as ``reconcile`` finds it, and otherwise waited out: ``RetryLater``
asks to look again in 15 s (``RECONCILE_EVERY``) without spending an attempt, and the
consumer keeps the event in hand up to its ``max_hold`` of 900 s, above ``stale_after``,
until the intent is stale and is claimed and called once.  An event whose action cannot
be settled even so is dead-lettered with that reason — visible and replayable, never repeated.

Each claim carries a random token, so a writer whose request reached the broker but whose
answer was lost (a restart, a leader election) recognises its own entry instead of taking
it for someone else's call.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from csfabric.kernel._clock import Clock, RealClock
from csfabric.kernel._ledger_entries import LedgerEntries, State
from csfabric.kernel._settings import FabricSettings
from csfabric.kernel.bus import Bus, retry_broker
from csfabric.kernel.errors import (
    ActionRefused,
    ConfigError,
    LeaseLost,
    OutcomeUnknownError,
    PermanentError,
    RetryLater,
    TransientError,
)

BUCKET = "csfabric_actions"
STALE_AFTER = 450.0
CALL_SHARE = 0.8  # the call deadline's share of stale_after, unless given
# While an intent is too young to be stale, how often a redelivery looks again (reconcile
# may find what the call created well before stale_after).
RECONCILE_EVERY = 15.0

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

    def __init__(
        self,
        kv: KeyValue,
        *,
        clock: Clock | None = None,
        stale_after: float = STALE_AFTER,
        call_timeout: float | None = None,
    ) -> None:
        timeout = stale_after * CALL_SHARE if call_timeout is None else call_timeout
        if not 0 < timeout < stale_after:
            raise ConfigError(
                f"action call deadline {timeout:g}s must be > 0 and below stale_after "
                f"{stale_after:g}s, or a running call could be judged stale and repeated"
            )
        self.kv = kv
        self.clock = clock or RealClock()
        self._entries = LedgerEntries(kv, self.clock)
        self.stale_after = stale_after
        self.call_timeout = timeout

    async def run(
        self,
        key: str,
        call: Callable[[], Awaitable[Any]],
        *,
        reconcile: Callable[[], Awaitable[Any | None]] | None = None,
    ) -> ActionResult:
        """Run ``call`` at most once for ``key``; its JSON-able result is the recorded outcome.

        ``call`` gets ``call_timeout`` fabric seconds.  ``reconcile`` returns the outcome of
        an earlier call it finds (by the ``csfabric:key`` tag), or ``None``.
        """
        token = uuid.uuid4().hex
        now = self.clock.now()
        try:
            revision = await self._entries.create(key, token, now)
        except KeyWrongLastSequenceError:
            found = await self._resume(key, token, now, reconcile)
            if isinstance(found, ActionResult):
                return found
            revision = found
        claimed = {"at": now.isoformat(), "token": token}
        try:
            outcome = await self.clock.wait_for(call(), self.call_timeout)
        except PermanentError as error:
            await self._entries.settle(key, revision, "refused", error, claimed)
            raise
        except OutcomeUnknownError as error:
            await self._entries.settle(key, revision, "unknown", error, claimed)
            raise
        except TransientError as error:
            # A lease term that ran out while the call acted (``Lease.fenced()``'s exit)
            # proves nothing about the act: unknown, reconciled, never repeated blindly.
            acted = isinstance(error, LeaseLost) and error.acted
            state: State = "unknown" if acted else "failed"
            await self._entries.settle(key, revision, state, error, claimed)
            raise
        except TimeoutError:
            unknown = OutcomeUnknownError(
                f"action {key[:12]}: no answer within its {self.call_timeout:g}s deadline, "
                "outcome unknown (reconciled on the next attempt)"
            )
            await self._entries.settle(key, revision, "unknown", unknown, claimed)
            raise unknown from None
        except Exception as error:
            # Not classified: it may have failed half-way, so nothing is proven.
            await self._entries.settle(key, revision, "unknown", error, claimed)
            raise
        await self._entries.record(key, outcome, revision, token)
        return ActionResult(key, outcome, "call")

    async def outcome(self, key: str) -> Any | None:
        entry = await self._entries.get(key)
        return None if entry is None or entry[0].get("state") != "done" else entry[0]["outcome"]

    async def state(self, key: str) -> dict[str, Any] | None:
        """The stored record of ``key`` (``state``, ``at``, ``outcome`` or ``error``)."""
        entry = await self._entries.get(key)
        return None if entry is None else entry[0]

    async def _resume(
        self,
        key: str,
        token: str,
        now: datetime,
        reconcile: Callable[[], Awaitable[Any | None]] | None,
    ) -> ActionResult | int:
        """An entry exists: return its outcome, reconcile it, or claim it (its revision)."""
        entry = await self._entries.get(key)
        if entry is None:
            raise TransientError(f"action {key[:12]}: entry vanished while reading, retry")
        record, revision = entry
        state = record.get("state")
        if record.get("token") == token:
            return revision  # our own intent: the create reached the broker, its answer did not
        if state == "done":
            return ActionResult(key, record.get("outcome"), "recorded")
        if state == "refused":
            raise ActionRefused(key, str(record.get("error", "")))
        if state == "failed":
            return await self._entries.claim(key, revision, token, now)
        # An intent (in flight, or left by a crash) or an unknown outcome: it may have acted.
        if reconcile is not None:
            found = await reconcile()
            if found is not None:
                await self._entries.record(key, found, revision, token)
                return ActionResult(key, found, "reconciled")
        age = (now - datetime.fromisoformat(record["at"])).total_seconds()
        what = "in flight" if state == "intent" else "of unknown outcome"
        if age < self.stale_after:
            # Not this delivery's fault: wait until the intent is stale without spending
            # the event's attempts (a crash mid-call must not dead-letter the event).
            raise RetryLater(
                f"action {key[:12]} is {what} ({age:.0f}s old), retry later",
                after=min(self.stale_after - age, RECONCILE_EVERY),
            )
        if reconcile is None:
            raise PermanentError(
                f"action {key[:12]} is {what} ({age:.0f}s old) and has no reconcile step: "
                "not repeating it blindly"
            )
        # Its call is over for sure and left no trace: it did not happen.  Claim and call.
        return await self._entries.claim(key, revision, token, now)


async def open_ledger(
    bus: Bus,
    settings: FabricSettings | None = None,
    *,
    replicas: int = 1,
    stale_after: float = STALE_AFTER,
    call_timeout: float | None = None,
) -> ActionLedger:
    """The ledger on bucket ``csfabric_actions``, its keys expiring after the configured TTL.

    The one place the bucket is opened: it is created with the TTL
    (``CSFABRIC_ACTION_KEY_TTL``), and a bucket made before with another TTL is updated.
    """
    settings = settings or FabricSettings()
    ttl = settings.action_key_ttl.total_seconds()
    if ttl <= stale_after:
        raise ConfigError(
            f"CSFABRIC_ACTION_KEY_TTL {ttl:g}s must exceed stale_after {stale_after:g}s, "
            "or a key could expire while its call is still in flight"
        )
    real_ttl = bus.clock.to_real(ttl)  # the server expires keys in wall time
    kv = await bus.key_value(BUCKET, ttl=real_ttl, replicas=replicas)
    status = await retry_broker(kv.status, what=f"read KV {BUCKET}")
    if status.ttl is None or abs(status.ttl - real_ttl) > 1e-3:
        config = status.stream_info.config
        config.max_age = real_ttl
        # JetStream refuses a duplicate window longer than the max age.
        config.duplicate_window = min(config.duplicate_window or real_ttl, real_ttl)
        await retry_broker(lambda: bus.js.update_stream(config), what=f"set TTL of {BUCKET}")
    return ActionLedger(kv, clock=bus.clock, stale_after=stale_after, call_timeout=call_timeout)


__all__ = [
    "BUCKET",
    "STALE_AFTER",
    "ActionLedger",
    "ActionResult",
    "action_key",
    "open_ledger",
]
