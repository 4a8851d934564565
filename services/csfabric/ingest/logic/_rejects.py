"""Refused webhook requests, counted per window and source, so refusals cost no audit write each."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from csfabric.ingest.logic._webhook import Rejection, evidence_text

OTHER_SOURCE = "other"


@dataclass
class RejectCount:
    """Requests from one source refused for one reason within [start, end)."""

    source: str
    kind: str
    reason: str
    start: datetime
    end: datetime
    count: int = 0
    bytes: int = 0
    evidence: dict[str, str] = field(default_factory=dict)  # of the first request, bounded


class RejectTally:
    """Counts of refused webhook requests per (window, source, kind), held in memory.

    An unauthenticated sender must not be able to write one audit record per request (the
    trail would be pushed out), nor make the 401 wait for the audit stream, nor grow memory
    without bound.  So a refusal only counts here, and one record per entry is written once
    its window has ended.  Bounded: at most ``max_sources`` sources a window (later ones count
    as ``other``), at most ``max_windows`` windows waiting (while the audit stream is away,
    the oldest is merged into the next).
    """

    def __init__(self, window: float, max_sources: int = 100, max_windows: int = 60) -> None:
        self.window, self.max_sources, self.max_windows = window, max_sources, max_windows
        self._counts: dict[tuple[int, str, str], RejectCount] = {}
        self._sources: dict[int, set[str]] = {}

    def __len__(self) -> int:
        return len(self._counts)

    def window_end(self, now: datetime) -> datetime:
        """When the window holding ``now`` ends."""
        return self._start(self._index(now) + 1)

    def add(
        self, now: datetime, source: str, why: Rejection, size: int, evidence: Mapping[str, str]
    ) -> None:
        index = self._index(now)
        source = self._admit(index, source)
        key = (index, source, why.kind)
        entry = self._counts.get(key)
        if entry is None:
            entry = RejectCount(
                source=source,
                kind=why.kind,
                reason=why.reason,
                start=self._start(index),
                end=self._start(index + 1),
                evidence={k: evidence_text(v) for k, v in evidence.items()},
            )
            self._counts[key] = entry
        entry.count += 1
        entry.bytes += size
        self._fold()

    def due(self, now: datetime) -> list[RejectCount]:
        """Entries whose window has ended by ``now``, oldest first."""
        return sorted((e for e in self._counts.values() if e.end <= now), key=_order)

    def pending(self) -> list[RejectCount]:
        """Every entry, the open window's too (for the last flush at shutdown)."""
        return sorted(self._counts.values(), key=_order)

    def done(self, entry: RejectCount) -> None:
        """``entry`` is recorded: forget it."""
        for key, held in list(self._counts.items()):
            if held is entry:
                del self._counts[key]
                if not any(k[0] == key[0] for k in self._counts):
                    self._sources.pop(key[0], None)
                return

    def _index(self, now: datetime) -> int:
        return int(now.timestamp() // self.window)

    def _start(self, index: int) -> datetime:
        return datetime.fromtimestamp(index * self.window, UTC)

    def _admit(self, index: int, source: str) -> str:
        sources = self._sources.setdefault(index, set())
        if source in sources:
            return source
        if len(sources) >= self.max_sources:
            return OTHER_SOURCE
        sources.add(source)
        return source

    def _fold(self) -> None:
        while len(self._sources) > self.max_windows:
            oldest, into = sorted(self._sources)[:2]
            self._sources.pop(oldest)
            for key in [k for k in self._counts if k[0] == oldest]:
                old = self._counts.pop(key)
                source = self._admit(into, old.source)
                merged = self._counts.get((into, source, old.kind))
                if merged is None:
                    old.source, old.end = source, self._start(into + 1)
                    self._counts[(into, source, old.kind)] = old
                else:
                    merged.count += old.count
                    merged.bytes += old.bytes
                    merged.start = min(merged.start, old.start)


def _order(entry: RejectCount) -> tuple[datetime, str, str]:
    return entry.start, entry.source, entry.kind


def reject_audit_key(instance: str, entry: RejectCount) -> str:
    """Audit key of one count: stable, so a flush retried after a failure is stored once;
    the instance is part of it, since every replica counts its own requests."""
    parts = (instance, entry.start.isoformat(), entry.source, entry.kind)
    return "ingest:reject-webhook:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()
