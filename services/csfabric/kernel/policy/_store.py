"""The policy store: KV ``csfabric_policies`` for the current versions, a stream for history.

KV key ``<kind>.<name>`` holds a :class:`StoredPolicy`; ``_global.pause`` holds the kill
switch.  Every applied version is also published to ``csfabric.policy.<kind>.<name>``
(stream ``CSFABRIC_POLICIES``) so ``policy show --version N`` and auditors can read any
past version; a deletion is published there too, marked by a header.

Writes are compare-and-set on the KV revision read at planning time, so two operators
applying at once cannot silently overwrite each other: the loser's whole apply is rolled
back and fails with :class:`PolicyConflictError`.  History, audit records and control
events are published only after every KV write of an apply succeeded, so nothing outside
the KV ever shows a half-applied directory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from csfabric.kernel._audit import Auditor
from csfabric.kernel._control import new_command_id, publish_control
from csfabric.kernel.bus import Bus
from csfabric.kernel.errors import ConfigError
from csfabric.kernel.policy._model import PolicyDocument
from csfabric.kernel.policy._read import (
    GLOBAL_PAUSE_KEY,
    HISTORY_OP,
    POLICY_BUCKET,
    POLICY_HISTORY_STREAM,
    GlobalPause,
    PolicyReader,
    StoredPolicy,
    history_subject,
    unified_diff,
)
from csfabric.kernel.policy._watch import PolicyWatcher
from csfabric.kernel.policy.errors import PolicyConflictError

log = logging.getLogger(__name__)

POLICY_SERVICE = "policy"

ChangeType = Literal["created", "updated", "unchanged", "deleted", "paused", "resumed"]


@dataclass(frozen=True)
class Change:
    """What an apply, delete, pause or resume did (or would do) to one policy."""

    kind: str
    name: str
    version: int
    change: ChangeType
    diff: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}.{self.name}"


@dataclass
class _Plan:
    doc: PolicyDocument
    current: StoredPolicy | None
    revision: int  # KV revision read; 0 when absent
    change: Change


class PolicyStore(PolicyReader):
    """Apply, read, delete and pause policies; every change is audited and announced."""

    def __init__(self, bus: Bus) -> None:
        super().__init__(bus)
        # Audit records of policy changes go to csfabric.audit.policy whoever makes them
        # (the CLI, `csfabric dev` loading demo policies, a test).
        audit_bus = (
            bus
            if bus.service == POLICY_SERVICE
            else Bus(bus.nc, service=POLICY_SERVICE, clock=bus.clock, metrics=bus.metrics)
        )
        self.auditor = Auditor(audit_bus)

    # -- planning and applying -----------------------------------------------------------

    async def plan(self, docs: Sequence[PolicyDocument]) -> list[_Plan]:
        seen: set[str] = set()
        plans: list[_Plan] = []
        for doc in docs:
            if doc.key in seen:
                raise ConfigError(f"policy {doc.key} appears twice in one apply")
            seen.add(doc.key)
            current, revision = await self._read(doc.key)
            new = doc.to_dict()
            kind, name = doc.kind, doc.metadata.name
            if current is not None and current.document == new:
                change = Change(kind, name, current.version, "unchanged")
            else:
                last = current.version if current else await self._last_version(kind, name)
                what: ChangeType = "updated" if current else "created"
                change = Change(kind, name, last + 1, what, unified_diff(doc.key, current, new))
            plans.append(_Plan(doc, current, revision, change))
        return plans

    async def diff(self, doc: PolicyDocument) -> str:
        """The unified YAML diff that applying ``doc`` would make ("" when unchanged)."""
        return (await self.plan([doc]))[0].change.diff

    async def apply(self, docs: Sequence[PolicyDocument], operator: str) -> list[Change]:
        """Store every document or none; unchanged documents keep their version."""
        plans = await self.plan(docs)
        now = self.bus.clock.now()
        values = {
            p.doc.key: StoredPolicy(
                kind=p.doc.kind,
                name=p.doc.metadata.name,
                version=p.change.version,
                document=p.doc.to_dict(),
                applied_by=operator,
                applied_at=now,
                # An operator's pause outlives re-applies: only `policy resume` lifts it.
                paused=p.current.paused if p.current else False,
            )
            for p in plans
            if p.change.change != "unchanged"
        }
        written: list[tuple[_Plan, int]] = []
        try:
            for p in plans:
                if p.change.change != "unchanged":
                    new_rev = await self._cas(p.doc.key, values[p.doc.key].to_bytes(), p.revision)
                    written.append((p, new_rev))
        except Exception as exc:
            await self._rollback(written)
            if isinstance(exc, KeyWrongLastSequenceError):
                raise PolicyConflictError(
                    "a policy changed while this apply ran (someone else applied at the same"
                    " time); nothing was applied — run the command again"
                ) from None
            raise
        for p in plans:
            await self._announce(p, values.get(p.doc.key), operator)
        return [p.change for p in plans]

    async def _cas(self, key: str, value: bytes, revision: int) -> int:
        kv = await self.kv()

        async def write() -> int:
            if revision == 0:
                return await kv.create(key, value)
            return await kv.update(key, value, last=revision)

        try:
            return await self.bus.retry(write, what=f"write policy {key}")
        except KeyWrongLastSequenceError:
            # A retried write whose first attempt landed looks like a conflict: check.
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                raise KeyWrongLastSequenceError() from None  # deleted meanwhile: a conflict
            if entry.value == value and entry.revision is not None:
                return entry.revision
            raise

    async def _rollback(self, written: list[tuple[_Plan, int]]) -> None:
        kv = await self.kv()
        for p, revision in reversed(written):
            try:
                if p.current is None:
                    await kv.delete(p.doc.key, last=revision)
                else:
                    await kv.update(p.doc.key, p.current.to_bytes(), last=revision)
            except Exception:  # keep rolling back the others; the log names what is left
                log.exception("rollback of policy %s failed", p.doc.key)

    async def _announce(self, p: _Plan, value: StoredPolicy | None, operator: str) -> None:
        change = p.change
        if value is not None:
            await self.bus.publish(
                history_subject(change.kind, change.name),
                value.to_bytes(),
                msg_id=f"{change.key}:{change.version}",
            )
        await self._record("apply", change, operator)

    # -- delete and pause ----------------------------------------------------------------

    async def _require(self, kind: str, name: str) -> tuple[StoredPolicy, int]:
        current, revision = await self._read(f"{kind}.{name}")
        if current is None:
            raise ConfigError(f"no policy {kind}.{name} is stored (see `csfabric policy list`)")
        return current, revision

    async def delete(self, kind: str, name: str, operator: str) -> Change:
        current, revision = await self._require(kind, name)
        kv = await self.kv()
        try:
            await self.bus.retry(lambda: kv.delete(current.key, last=revision), what="delete")
        except KeyWrongLastSequenceError:
            raise PolicyConflictError(f"{current.key} changed meanwhile; not deleted") from None
        # The history keeps the deletion too; get(version=N) skips these markers.
        await self.bus.publish(
            history_subject(kind, name),
            current.to_bytes(),
            msg_id=f"{current.key}:{current.version}:deleted:{revision}",
            headers={HISTORY_OP: "delete", "Csfabric-Operator": operator},
        )
        change = Change(
            kind, name, current.version, "deleted", unified_diff(current.key, current, None)
        )
        await self._record("delete", change, operator)
        return change

    async def set_paused(self, kind: str, name: str, paused: bool, operator: str) -> Change:
        """Pause or resume one policy; its document and version stay as they are."""
        current, revision = await self._require(kind, name)
        what: ChangeType = "paused" if paused else "resumed"
        if current.paused == paused:
            change = Change(kind, name, current.version, "unchanged")
        else:
            value = current.model_copy(update={"paused": paused})
            try:
                await self._cas(current.key, value.to_bytes(), revision)
            except KeyWrongLastSequenceError:
                raise PolicyConflictError(f"{current.key} changed meanwhile; run again") from None
            change = Change(kind, name, current.version, what)
        await self._record("pause" if paused else "resume", change, operator)
        return change

    async def pause_all(self, operator: str) -> GlobalPause:
        """The kill switch: every :class:`~._gate.ActionGate` refuses to act until resumed."""
        return await self._set_global(True, operator)

    async def resume_all(self, operator: str) -> GlobalPause:
        return await self._set_global(False, operator)

    async def _set_global(self, paused: bool, operator: str) -> GlobalPause:
        kv = await self.kv()
        value = GlobalPause(paused=paused, by=operator, at=self.bus.clock.now())
        # Last writer wins on purpose: a kill switch must never fail on a conflict.
        payload = value.model_dump_json().encode()
        await self.bus.retry(lambda: kv.put(GLOBAL_PAUSE_KEY, payload), what="kill switch")
        change = Change("_global", "pause", 0, "paused" if paused else "resumed")
        await self._record("pause" if paused else "resume", change, operator, target="all")
        return value

    async def _record(
        self, decision: str, change: Change, operator: str, *, target: str | None = None
    ) -> None:
        """An audit record for every command (also "unchanged"), a control event per change.

        Policy changes are commands to whichever service reads the policy (control
        service "policy"); the kill switch (``target="all"``) is a command to all of them.
        """
        unchanged = change.change == "unchanged"
        versioned = target is None
        await self.auditor.emit(
            action_key=f"{POLICY_SERVICE}:{new_command_id()}:{target or change.key}",
            decision=decision,
            reason=f"{target or change.key}: {change.change}"
            + (f" (version {change.version})" if versioned else ""),
            policy=change.key if versioned else None,
            policy_version=change.version if versioned else None,
            outcome="skipped" if unchanged else "success",
            evidence={"diff": change.diff, "version": change.version, "change": change.change},
            operator=operator,
        )
        if not unchanged:
            await publish_control(
                self.bus,
                service=POLICY_SERVICE if versioned else "all",
                command=decision,
                target=target or change.key,
                operator=operator,
            )


__all__ = [
    "GLOBAL_PAUSE_KEY",
    "POLICY_BUCKET",
    "POLICY_HISTORY_STREAM",
    "POLICY_SERVICE",
    "Change",
    "ChangeType",
    "GlobalPause",
    "PolicyStore",
    "PolicyWatcher",
    "StoredPolicy",
    "history_subject",
    "unified_diff",
]
