"""The snapshots service's decisions, pure: no broker, no HTTP, no clock (``now`` is given).

What a ``listVolumes`` row means to a policy, when each volume is due in a window, how a
CloudStack answer is classified (retry in the window, or an audited skip), which copies a
``listSnapshots`` row shows and whether they are complete, and what retention retires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from csfabric.dr import Copy, SnapshotPolicy, VolumeRef, Window, offset_in_window, to_retire

TAG_POLICY = "csfabric:policy"
TAG_KEY = "csfabric:key"
# CloudStack refusals a retry in the same window cannot get past: a suspended or disabled
# project (531), a limit (535: it lifts only when someone raises it or deletes), a volume
# that is not Ready or a bad parameter (431).
SKIP_CODES = frozenset({431, 531, 535})
# listSnapshots showunique=false names a store's copy by ObjectInDataStoreStateMachine.
_STORE_COMPLETE = "Ready"
_STORE_IN_FLIGHT = frozenset({"Allocated", "Creating", "Copying", "Migrating"})
# Volume states in which CloudStack takes no snapshot (refused with 431 anyway).
_NOT_SNAPSHOTTABLE = frozenset({"Destroy", "Destroyed", "Expunging", "Expunged", "Allocated"})

Verdict = Literal["skip", "retry"]


def classify(errorcode: int | None) -> Verdict:
    """What to do about a refused or failed ``createSnapshot`` within its window."""
    return "skip" if errorcode in SKIP_CODES else "retry"


def volume_ref(row: Mapping[str, Any]) -> VolumeRef:
    """A ``listVolumes`` row as the policy sees it."""
    tags = {
        str(t["key"]): str(t.get("value", ""))
        for t in row.get("tags") or []
        if isinstance(t, Mapping) and "key" in t
    }
    return VolumeRef(
        id=str(row["id"]),
        name=str(row.get("name", "")),
        zone_id=str(row.get("zoneid", "")),
        zone_name=row.get("zonename"),
        type=str(row.get("type") or "DATADISK"),
        account=row.get("account"),
        project=row.get("project"),
        project_id=row.get("projectid"),
        domain_path=row.get("domainpath") or row.get("domain"),
        tags=tags,
        virtualmachine_id=row.get("virtualmachineid"),
    )


def snapshottable(row: Mapping[str, Any]) -> bool:
    return str(row.get("state", "Ready")) not in _NOT_SNAPSHOTTABLE


def key_parts(policy: str, volume_id: str, window: Window) -> tuple[str, str, str, str]:
    """The idempotency key's parts of a timer action: (service, policy, resource, window)."""
    return ("snapshots", policy, volume_id, window.key)


@dataclass(frozen=True, order=True)
class Due:
    """One volume due in one window of one policy, at ``at``."""

    at: datetime
    policy: str
    volume_id: str
    window: Window


def plan_window(
    policy: SnapshotPolicy, name: str, volumes: Iterable[VolumeRef], window: Window
) -> list[Due]:
    """Every selected volume's due time in ``window``, earliest first (stable spread)."""
    due = [
        Due(window.start + offset_in_window(v.id, name, window, policy.jitter), name, v.id, window)
        for v in volumes
        if policy.selects(v)
    ]
    return sorted(due)


def retry_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential, without jitter: the spread already comes from the due times."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


def may_retry(now: datetime, delay: float, window: Window, margin: float) -> bool:
    """Whether a retry after ``delay`` still starts inside the window."""
    return now + timedelta(seconds=delay + margin) < window.end


def store_state(row: Mapping[str, Any]) -> str:
    """A copy's state as :class:`~csfabric.dr.Copy` reads it (``BackedUp`` = complete).

    With ``showunique=false`` a row names its store's state (``datastorestate``): Ready is
    complete there; without that key (an older CloudStack) the snapshot's own state counts.
    """
    store = row.get("datastorestate")
    state = str(row.get("state", ""))
    if store is None:
        return state
    if store == _STORE_COMPLETE:
        return state  # BackedUp once the snapshot itself is
    if store in _STORE_IN_FLIGHT:
        return "Copying"
    return str(store)  # e.g. Failed: neither complete nor in flight


def copies_in_zone(rows: Iterable[Mapping[str, Any]], zone_id: str) -> list[Copy]:
    """The rows of ``listSnapshots zoneid=Z showunique=false`` as one copy per snapshot
    (a zone may hold a snapshot on several stores: complete when any store is Ready)."""
    best: dict[str, Copy] = {}
    for row in rows:
        tags = {t.get("key"): t.get("value") for t in row.get("tags") or []}
        copy = Copy(
            snapshot_id=str(row["id"]),
            volume_id=str(row.get("volumeid", "")),
            zone_id=zone_id,
            created=datetime.fromisoformat(str(row["created"])),
            state=store_state(row),
            policy=tags.get(TAG_POLICY),
        )
        seen = best.get(copy.snapshot_id)
        if seen is None or (copy.complete and not seen.complete):
            best[copy.snapshot_id] = copy
    return list(best.values())


def keys_of(rows: Iterable[Mapping[str, Any]]) -> set[str]:
    """The ``csfabric:key`` tags of ``listSnapshots`` rows: the windows already done."""
    out: set[str] = set()
    for row in rows:
        for tag in row.get("tags") or []:
            if tag.get("key") == TAG_KEY and tag.get("value"):
                out.add(str(tag["value"]))
    return out


def retire(
    policy: SnapshotPolicy, name: str, zone_id: str, copies: Iterable[Copy], now: datetime
) -> list[Copy]:
    """What retention deletes in ``zone_id``, oldest first (``retain`` counts per volume and
    zone: :func:`csfabric.dr.to_retire`)."""
    return to_retire(policy, name, zone_id, copies, now)


__all__ = [
    "SKIP_CODES",
    "TAG_KEY",
    "TAG_POLICY",
    "Due",
    "Verdict",
    "classify",
    "copies_in_zone",
    "key_parts",
    "keys_of",
    "may_retry",
    "plan_window",
    "retire",
    "retry_delay",
    "snapshottable",
    "store_state",
    "volume_ref",
]
