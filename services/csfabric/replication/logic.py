"""Replication's pure decisions: which copies to make, what a volume would lose, breaches.

No broker, HTTP, tracing or clock here: rows are plain ``dict`` s as CloudStack lists them,
``now`` is always given.  ``csfabric dr status`` computes with these same functions, so the
CLI and the service cannot disagree about a volume.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import csfabric.dr as dr
from csfabric.dr import Copy, RpoSample, VolumeRef, achieved_rpo, newest_complete

POLICY_TAG = "csfabric:policy"
# Store states of a copy that will never complete: it does not count as present.
FAILED = frozenset({"Destroying", "Destroyed", "Failed", "Error"})

Row = Mapping[str, Any]


def parse_date(text: str) -> datetime:
    """CloudStack's API date (``2026-12-04T10:20:00+0000``)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


def tags_of(row: Row) -> dict[str, str]:
    return {str(t.get("key")): str(t.get("value", "")) for t in row.get("tags") or []}


def copy_from_row(row: Row, zone_id: str) -> Copy:
    """One ``listSnapshots zoneid=<zone_id>`` row as a :class:`Copy` in that zone.

    With ``showunique=false`` a row carries ``datastorestate``: the copy is complete only
    when it is ``Ready`` (the snapshot's own ``state`` says BackedUp as soon as its first
    store has it).  Without that key (older servers) the snapshot's ``state`` decides.
    """
    state = str(row.get("state", ""))
    store = row.get("datastorestate")
    if store == dr.STORE_READY:
        state = dr.BACKED_UP
    elif store in FAILED:
        state = "Error"
    elif store is not None:
        state = "Copying" if state == dr.BACKED_UP else state
    return Copy(
        snapshot_id=str(row["id"]),
        volume_id=str(row.get("volumeid", "")),
        zone_id=zone_id,
        created=parse_date(str(row["created"])),
        state=state,
        policy=tags_of(row).get(POLICY_TAG),
    )


def merge_copies(copies: Iterable[Copy]) -> list[Copy]:
    """One copy per (snapshot, zone): with several stores per zone, the best state wins."""
    best: dict[tuple[str, str], Copy] = {}
    for copy in copies:
        key = (copy.snapshot_id, copy.zone_id)
        if key not in best or (copy.complete and not best[key].complete):
            best[key] = copy
    return list(best.values())


@dataclass(frozen=True)
class Attempt:
    """Copies of one snapshot to one zone tried so far, and when the next may go."""

    count: int
    next_at: datetime
    last_error: str = ""


@dataclass(frozen=True)
class CopyTask:
    snapshot_id: str
    volume_id: str
    zone_id: str
    created: datetime
    attempt: int  # 1 for the first try


def retry_delay(attempt: int, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential backoff after the ``attempt``-th failure (1-based), capped."""
    grown: timedelta = base * (2 ** max(attempt - 1, 0))
    return min(grown, cap)


def copies_to_make(
    local: Iterable[Copy],
    dr: Iterable[Copy],
    zone_id: str,
    now: datetime,
    *,
    grace: timedelta,
    horizon: timedelta,
    attempts: Mapping[tuple[str, str], Attempt],
    max_attempts: int,
) -> list[CopyTask]:
    """Complete local snapshots newer than their volume's newest live copy in ``zone_id``
    (older ones would not improve the RPO, and copying back what retention removed would
    fight it), aged between ``grace`` (``zoneids`` may still be copying) and ``horizon``,
    not backing off nor given up after ``max_attempts``; newest first."""
    live = [c for c in dr if c.zone_id == zone_id and c.state not in FAILED]
    newest: dict[str, datetime] = {}
    for c in live:
        newest[c.volume_id] = max(newest.get(c.volume_id, c.created), c.created)
    tasks: list[CopyTask] = []
    for copy in sorted(local, key=lambda c: c.created, reverse=True):
        age = now - copy.created
        covered = copy.created <= newest.get(copy.volume_id, datetime.min.replace(tzinfo=UTC))
        if not copy.complete or covered or age < grace or age > horizon:
            continue
        tried = attempts.get((copy.snapshot_id, zone_id))
        if tried is not None and (tried.count >= max_attempts or now < tried.next_at):
            continue
        count = 1 if tried is None else tried.count + 1
        tasks.append(CopyTask(copy.snapshot_id, copy.volume_id, zone_id, copy.created, count))
    return tasks


@dataclass(frozen=True)
class VolumeView:
    """A volume in scope; ``since``: its creation or the policy's apply, the later."""

    ref: VolumeRef
    since: datetime | None = None


def sample(
    now: datetime, view: VolumeView, local: Iterable[Copy], dr: Iterable[Copy], rpo: timedelta
) -> RpoSample:
    """One volume's line of evidence (``local`` and ``dr``: its own copies): newest here,
    newest in the DR zone, achieved RPO, breach (never copied: counted from ``view.since``)."""
    dr = list(dr)
    newest_local, newest_dr = newest_complete(local), newest_complete(dr)
    achieved = achieved_rpo(now, dr)
    lost = achieved
    if lost is None and view.since is not None:
        lost = max(now - view.since, timedelta(0))
    return RpoSample(
        volume_id=view.ref.id,
        volume_name=view.ref.name,
        newest_local=None if newest_local is None else newest_local.created,
        newest_dr=None if newest_dr is None else newest_dr.created,
        achieved_rpo_s=None if achieved is None else achieved.total_seconds(),
        breach=lost is not None and lost > rpo,
    )


def samples(
    now: datetime,
    views: Iterable[VolumeView],
    local: Iterable[Copy],
    dr: Iterable[Copy],
    rpo: timedelta,
) -> list[RpoSample]:
    """:func:`sample` of every volume, the copies grouped by volume once."""
    here, there = _by_volume(local), _by_volume(dr)
    return [sample(now, v, here.get(v.ref.id, []), there.get(v.ref.id, []), rpo) for v in views]


def _by_volume(copies: Iterable[Copy]) -> dict[str, list[Copy]]:
    out: dict[str, list[Copy]] = {}
    for copy in copies:
        out.setdefault(copy.volume_id, []).append(copy)
    return out


@dataclass(frozen=True)
class OpenBreach:
    """A volume over its RPO (kept in KV, so a restart neither repeats nor forgets it)."""

    since: datetime
    cause: str


@dataclass(frozen=True)
class Transition:
    kind: Literal["breach", "recovered"]
    volume_id: str
    volume_name: str
    since: datetime
    ended: datetime | None
    achieved_rpo_s: float | None
    cause: str


def _since(s: RpoSample, created: datetime | None, rpo: timedelta, now: datetime) -> datetime:
    """When the RPO was first exceeded: the newest copy (or the volume's birth) plus ``rpo``."""
    base = s.newest_dr or created
    return now if base is None else min(base + rpo, now)


def transitions(
    open_breaches: Mapping[str, OpenBreach],
    samples: Sequence[RpoSample],
    created: Mapping[str, datetime | None],
    rpo: timedelta,
    now: datetime,
    causes: Mapping[str, str],
) -> tuple[dict[str, OpenBreach], list[Transition]]:
    """The breaches open after ``samples``, and what changed: one alert per edge, no repeats.

    A volume no longer in scope (destroyed, untagged) with an open breach recovers with
    that as its cause, so no breach stays open for ever.
    """
    still: dict[str, OpenBreach] = {}
    changes: list[Transition] = []
    for s in samples:
        was = open_breaches.get(s.volume_id)
        name, rpo_s = s.volume_name, s.achieved_rpo_s
        if s.breach and was is None:
            since = _since(s, created.get(s.volume_id), rpo, now)
            why = causes.get(s.volume_id, "unknown")
            still[s.volume_id] = OpenBreach(since, why)
            changes.append(Transition("breach", s.volume_id, name, since, None, rpo_s, why))
        elif s.breach and was is not None:
            still[s.volume_id] = was
        elif was is not None:
            back = Transition("recovered", s.volume_id, name, was.since, now, rpo_s, was.cause)
            changes.append(back)
    seen = {s.volume_id for s in samples}
    for volume_id, was in open_breaches.items():
        if volume_id not in seen:
            gone = f"{was.cause}; volume left the policy's scope"
            changes.append(Transition("recovered", volume_id, "", was.since, now, None, gone))
    return still, changes


def cause(s: RpoSample, dr_zone: str, last_error: str | None) -> str:
    """Why a volume is over its RPO, as far as the fabric knows."""
    if s.newest_local is None:
        return "no snapshot of the volume in its own zone (snapshots missed)"
    if s.newest_dr is not None and s.newest_local <= s.newest_dr:
        return f"no snapshot since {s.newest_dr.isoformat()} (snapshots missed or not yet due)"
    if last_error:
        return f"copy to {dr_zone} failed: {last_error}"
    return f"newest snapshot ({s.newest_local.isoformat()}) not yet complete in {dr_zone}"


@dataclass(frozen=True)
class Lag:
    snapshot_id: str
    zone_id: str
    seconds: float


def new_lags(
    dr: Iterable[Copy],
    watched: set[tuple[str, str]],
    recorded: set[tuple[str, str]],
    previous_sweep: datetime | None,
    now: datetime,
    copied_at: Mapping[str, datetime] | None = None,
) -> list[Lag]:
    """Copy lag (created → complete in the DR zone) of copies that completed since the
    previous sweep, for a copy seen incomplete or missing (``watched``) or created after the
    previous sweep; a copy found complete after a gap (a restart) says nothing and is not
    counted.  The end is the SNAPSHOT.COPY Completed event's time when known (``copied_at``),
    else ``now``: an upper bound at most one sweep too high.
    """
    out: list[Lag] = []
    for c in dr:
        key = (c.snapshot_id, c.zone_id)
        fresh = previous_sweep is not None and c.created >= previous_sweep
        if not c.complete or key in recorded or not (key in watched or fresh):
            continue
        end = (copied_at or {}).get(c.snapshot_id, now)
        end = end if c.created <= end <= now else now
        out.append(Lag(c.snapshot_id, c.zone_id, max((end - c.created).total_seconds(), 0.0)))
    return out


__all__ = [
    "POLICY_TAG",
    "Attempt",
    "CopyTask",
    "Lag",
    "OpenBreach",
    "Transition",
    "VolumeView",
    "cause",
    "copies_to_make",
    "copy_from_row",
    "merge_copies",
    "new_lags",
    "parse_date",
    "retry_delay",
    "sample",
    "samples",
    "tags_of",
    "transitions",
]
