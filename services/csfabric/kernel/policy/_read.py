"""Reading the policy store: its values, their history, the kill switch.

:class:`StoredPolicy` is the KV value of ``<kind>.<name>`` in ``csfabric_policies`` and the
payload of each message in the history stream ``CSFABRIC_POLICIES`` (subject
``csfabric.policy.<kind>.<name>``); :class:`GlobalPause` is the kill switch under
``_global.pause``.  :class:`PolicyReader` answers "what is stored now / what was version
N"; the writer (:mod:`._store`) and the live view (:mod:`._gate`) build on these.
"""

from __future__ import annotations

import builtins
import difflib
from datetime import datetime
from typing import Any

import yaml
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from csfabric.kernel.bus import Bus
from csfabric.kernel.policy._model import (
    PolicyBase,
    PolicyDocument,
    kind_model,
    known_kinds,
    parse_document,
)

POLICY_BUCKET = "csfabric_policies"
POLICY_HISTORY_STREAM = "CSFABRIC_POLICIES"
GLOBAL_PAUSE_KEY = "_global.pause"


def history_subject(kind: str, name: str) -> str:
    return f"csfabric.policy.{kind}.{name}"


def _base_keys() -> frozenset[str]:
    return frozenset(
        key for name, info in PolicyBase.model_fields.items() for key in (name, info.alias) if key
    )


class StoredPolicy(BaseModel):
    """The KV value of one policy: the validated document plus who applied it and when."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    kind: str
    name: str
    version: int = Field(ge=1)
    document: dict[str, Any] = Field(description="apiVersion, kind, metadata, spec as applied")
    applied_by: str = Field(alias="appliedBy")
    applied_at: datetime = Field(alias="appliedAt")
    paused: bool = Field(False, description="paused by an operator (`csfabric policy pause`)")
    _spec: PolicyBase | None = PrivateAttr(None)

    @property
    def key(self) -> str:
        return f"{self.kind}.{self.name}"

    def spec(self) -> PolicyBase:
        """The spec as its kind's model; for a kind this process does not know, the common
        :class:`PolicyBase` fields, which is all the action gate needs."""
        if self._spec is None:
            raw = self.document.get("spec") or {}
            if self.kind in known_kinds():
                self._spec = kind_model(self.kind).model_validate(raw)
            else:
                base = _base_keys()
                self._spec = PolicyBase.model_validate({k: v for k, v in raw.items() if k in base})
        return self._spec

    def parsed(self) -> PolicyDocument:
        """The whole document; raises :class:`ConfigError` when the kind is unknown here."""
        return parse_document(self.document)

    @property
    def effective_paused(self) -> bool:
        """Paused by an operator or by the document's own ``spec.paused``."""
        return self.paused or self.spec().paused

    def to_bytes(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class GlobalPause(BaseModel):
    """The kill switch (KV key ``_global.pause``)."""

    paused: bool
    by: str
    at: datetime


HISTORY_OP = "Csfabric-Policy-Op"  # history header marking a deletion


def document_yaml(document: dict[str, Any] | None) -> str:
    return "" if document is None else yaml.safe_dump(document, sort_keys=False)


def unified_diff(key: str, old: StoredPolicy | None, new: dict[str, Any] | None) -> str:
    before = f"{key} v{old.version}" if old else "/dev/null"
    lines = difflib.unified_diff(
        document_yaml(old.document if old else None).splitlines(keepends=True),
        document_yaml(new).splitlines(keepends=True),
        fromfile=before,
        tofile=f"{key} (new)" if new is not None else "/dev/null",
    )
    return "".join(lines)


class PolicyReader:
    """Reads current values (KV) and past versions (history stream)."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._kv: KeyValue | None = None

    async def kv(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self.bus.key_value(POLICY_BUCKET)
        return self._kv

    async def _read(self, key: str) -> tuple[StoredPolicy | None, int]:
        kv = await self.kv()
        try:
            entry = await self.bus.retry(lambda: kv.get(key), what=f"read policy {key}")
        except KeyNotFoundError:
            return None, 0
        return StoredPolicy.model_validate_json(entry.value or b""), entry.revision or 0

    async def get(self, kind: str, name: str, version: int | None = None) -> StoredPolicy | None:
        """The current version, or version ``version`` from the history stream."""
        current, _ = await self._read(f"{kind}.{name}")
        if version is None or (current is not None and current.version == version):
            return current
        return await self._history_version(kind, name, version)

    async def _history_version(self, kind: str, name: str, version: int) -> StoredPolicy | None:
        subject, seq = history_subject(kind, name), 1
        while True:
            try:
                msg = await self.bus.js.get_msg(
                    POLICY_HISTORY_STREAM, seq=seq, subject=subject, next=True
                )
            except NotFoundError:
                return None
            seq = (msg.seq or seq) + 1
            if (msg.headers or {}).get(HISTORY_OP) == "delete" or not msg.data:
                continue
            stored = StoredPolicy.model_validate_json(msg.data)
            if stored.version >= version:
                return stored if stored.version == version else None

    async def _last_version(self, kind: str, name: str) -> int:
        """The highest version ever applied, so a re-created policy continues its history."""
        try:
            msg = await self.bus.js.get_last_msg(POLICY_HISTORY_STREAM, history_subject(kind, name))
        except NotFoundError:
            return 0
        return StoredPolicy.model_validate_json(msg.data).version if msg.data else 0

    async def list(self) -> builtins.list[StoredPolicy]:
        """Every stored policy, sorted by key."""
        kv = await self.kv()
        watcher = await kv.watchall()
        found: builtins.list[StoredPolicy] = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                if entry.operation is None and entry.key != GLOBAL_PAUSE_KEY and entry.value:
                    found.append(StoredPolicy.model_validate_json(entry.value))
                if entry.delta == 0:
                    break
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return sorted(found, key=lambda p: p.key)

    async def global_pause(self) -> GlobalPause | None:
        kv = await self.kv()
        try:
            entry = await kv.get(GLOBAL_PAUSE_KEY)
        except KeyNotFoundError:
            return None
        return GlobalPause.model_validate_json(entry.value or b"{}")


__all__ = [
    "GLOBAL_PAUSE_KEY",
    "HISTORY_OP",
    "POLICY_BUCKET",
    "POLICY_HISTORY_STREAM",
    "GlobalPause",
    "PolicyReader",
    "StoredPolicy",
    "document_yaml",
    "history_subject",
    "unified_diff",
]
