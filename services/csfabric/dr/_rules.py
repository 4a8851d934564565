"""Retention and RPO: which snapshots may go, what a volume would lose now, and the worst case.

Pure: snapshots are plain :class:`Copy` rows, ``now`` is always given.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from csfabric.dr._policy import SnapshotPolicy

BACKED_UP = "BackedUp"
# A snapshot store row's ``datastorestate`` (``listSnapshots showunique=false``) once the
# copy in that zone is complete.
STORE_READY = "Ready"
# States in which a snapshot is still being made or copied: never retired then.
IN_FLIGHT = frozenset({"Allocated", "Creating", "CreatedOnPrimary", "BackingUp", "Copying"})


@dataclass(frozen=True)
class Copy:
    """One snapshot as seen in one zone (a row of ``listSnapshots zoneid=Z``)."""

    snapshot_id: str
    volume_id: str
    zone_id: str
    created: datetime
    state: str
    policy: str | None = None  # the csfabric:policy tag; None = not ours

    @property
    def complete(self) -> bool:
        return self.state == BACKED_UP


def newest_complete(copies: Iterable[Copy]) -> Copy | None:
    done = [c for c in copies if c.complete]
    return max(done, key=lambda c: c.created) if done else None


def achieved_rpo(now: datetime, dr_copies: Iterable[Copy]) -> timedelta | None:
    """What would be lost if the primary zone vanished at ``now``: ``now`` minus the creation of
    the newest complete copy in the DR zone; ``None`` when there is no copy at all."""
    newest = newest_complete(dr_copies)
    return None if newest is None else max(now - newest.created, timedelta(0))


def p95(samples: Sequence[timedelta]) -> timedelta:
    """The nearest-rank 95th percentile (0 when nothing was observed)."""
    if not samples:
        return timedelta(0)
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def worst_case_rpo(policy: SnapshotPolicy, copy_times: Sequence[timedelta] = ()) -> timedelta:
    """The longest a volume can go without a fresh DR copy when nothing fails.

    Two snapshots can be ``every + jitter`` apart (one at the start of its window, the next
    at the end of the next window's spread), and the newer only counts once copied.
    """
    copy = p95(copy_times) if policy.copy_to else timedelta(0)
    return policy.every + policy.jitter + copy


def to_retire(
    policy: SnapshotPolicy, name: str, zone_id: str, copies: Iterable[Copy], now: datetime
) -> list[Copy]:
    """The copies policy ``name`` made in ``zone_id`` that retention removes, oldest first.

    ``retain`` counts per volume and zone.  Kept whatever the numbers say: snapshots not made
    by this policy, copies still being made or copied, and each volume's newest complete
    copy (a volume is never left without one).
    """
    by_volume: dict[str, list[Copy]] = defaultdict(list)
    for copy in copies:
        if copy.zone_id == zone_id and copy.policy == name:
            by_volume[copy.volume_id].append(copy)
    retire: list[Copy] = []
    for own in by_volume.values():
        retire.extend(_retire_one(policy, own, now))
    return sorted(retire, key=lambda c: (c.created, c.snapshot_id))


def _retire_one(policy: SnapshotPolicy, own: list[Copy], now: datetime) -> list[Copy]:
    own = sorted(own, key=lambda c: (c.created, c.snapshot_id), reverse=True)  # newest first
    newest = newest_complete(own)
    retire: list[Copy] = []
    kept = 0
    for copy in own:
        too_old = policy.retain.max_age is not None and now - copy.created > policy.retain.max_age
        if kept < policy.retain.count and not too_old:
            kept += 1
            continue
        if copy.state in IN_FLIGHT or copy is newest:
            continue
        retire.append(copy)
    return retire


__all__ = [
    "BACKED_UP",
    "IN_FLIGHT",
    "STORE_READY",
    "Copy",
    "achieved_rpo",
    "newest_complete",
    "p95",
    "to_retire",
    "worst_case_rpo",
]
