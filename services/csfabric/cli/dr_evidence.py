"""Reading the DR evidence back from the streams, for ``csfabric dr report``.

Audit stream ``CSFABRIC_AUDIT``: ``csfabric.audit.replication`` (decision ``rpo-evidence``
with an :class:`~csfabric.dr.RpoEvidence` as evidence; ``rpo-breach``/``rpo-recovered`` with
an :class:`~csfabric.dr.RpoBreach`) and ``csfabric.audit.dr`` (``dr-drill`` with a
:class:`~csfabric.dr.DrillResult`).  Alert stream ``CSFABRIC_ALERTS``:
``csfabric.alert.replication.>``, whose bodies are :class:`RpoBreach` (bare, or as the
``data`` of a CloudEvent).  Messages are read one by one with ``get_msg(next_by_subj)``,
which needs no consumer (nothing is left behind on the server) and works on any
nats-server the fabric supports.  A record that does not parse is counted, not fatal: an
auditor must see that something was unreadable, and the rest of the report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from csfabric.dr import (
    DECISION_BREACH,
    DECISION_DRILL,
    DECISION_EVIDENCE,
    DECISION_RECOVERED,
    DrillResult,
    RpoBreach,
    RpoEvidence,
    RpoSample,
    p95,
)

AUDIT_STREAM, ALERT_STREAM = "CSFABRIC_AUDIT", "CSFABRIC_ALERTS"
SOURCES = (
    (AUDIT_STREAM, "csfabric.audit.replication"),
    (AUDIT_STREAM, "csfabric.audit.dr"),
    (ALERT_STREAM, "csfabric.alert.replication.>"),
)


@dataclass(frozen=True)
class Point:
    """One evidence record of one policy, reduced to what the chart draws."""

    at: datetime
    rpo_s: float
    worst_s: float | None
    p95_s: float | None
    volumes: int
    in_breach: int
    without_copy: int


@dataclass(frozen=True)
class Breach:
    policy: str
    volume_id: str
    volume_name: str
    rpo_s: float
    achieved_rpo_s: float | None
    start: datetime
    end: datetime | None  # None: still open at the end of the range
    cause: str


@dataclass
class ReportData:
    start: datetime
    end: datetime
    points: dict[str, list[Point]] = field(default_factory=dict)  # policy → time order
    breaches: list[Breach] = field(default_factory=list)
    drills: list[DrillResult] = field(default_factory=list)
    unreadable: int = 0
    read: int = 0


def point(evidence: RpoEvidence) -> Point:
    known = [s.achieved_rpo_s for s in evidence.volumes if s.achieved_rpo_s is not None]
    spread = p95([timedelta(seconds=k) for k in known]).total_seconds() if known else None
    return Point(
        evidence.at,
        evidence.rpo_s,
        evidence.worst_rpo_s,
        spread,
        len(evidence.volumes),
        evidence.in_breach,
        len(evidence.volumes) - len(known),
    )


async def messages(js: JetStreamContext, stream: str, subject: str) -> list[bytes]:
    """Every stored message of ``stream`` matching ``subject``, oldest first."""
    out: list[bytes] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return out
        out.append(msg.data or b"")
        if msg.seq is None:
            return out
        seq = msg.seq + 1


def _breach(body: Any) -> RpoBreach:
    data = body.get("data", body) if isinstance(body, dict) and "policy" not in body else body
    return RpoBreach.model_validate(data)


def collect(bodies: dict[str, list[bytes]], start: datetime, end: datetime) -> ReportData:
    """The report's data from raw message bodies by subject family (pure: no I/O, no clock)."""
    data = ReportData(start, end)
    opened: dict[tuple[str, str, datetime], RpoBreach] = {}
    closed: dict[tuple[str, str, datetime], RpoBreach] = {}
    evidence: dict[tuple[str, datetime], tuple[RpoEvidence, dict[str, RpoSample]]] = {}
    for family, raws in bodies.items():
        for raw in raws:
            data.read += 1
            try:
                body = json.loads(raw)
                if family == "alert":
                    seen = _breach(body)
                    key = (seen.policy, seen.volume_id, seen.since)
                    (closed if seen.ended is not None else opened)[key] = seen
                    continue
                decision, proof = body.get("decision"), body.get("evidence") or {}
                if decision == DECISION_EVIDENCE:
                    ev = RpoEvidence.model_validate(proof)
                    # A large policy's window comes in parts (one RpoEvidence per chunk of
                    # volumes); a redelivered part repeats its volumes: merge by volume id.
                    merged = evidence.setdefault((ev.policy, ev.at), (ev, {}))[1]
                    merged.update({v.volume_id: v for v in ev.volumes})
                elif decision in (DECISION_BREACH, DECISION_RECOVERED):
                    seen = RpoBreach.model_validate(proof)
                    key = (seen.policy, seen.volume_id, seen.since)
                    (closed if seen.ended is not None else opened)[key] = seen
                elif decision == DECISION_DRILL:
                    drill = DrillResult.model_validate(proof)
                    if start <= drill.started <= end:
                        data.drills.append(drill)
            except (ValueError, ValidationError, AttributeError, TypeError):
                data.unreadable += 1
    for (name, at), (ev, volumes) in sorted(evidence.items(), key=lambda kv: kv[0]):
        if start <= at <= end:
            whole = ev.model_copy(update={"volumes": list(volumes.values())})
            data.points.setdefault(name, []).append(point(whole))
    for key in sorted(opened.keys() | closed.keys()):
        last = closed.get(key)
        alert = opened.get(key) or last
        if alert is None:
            continue
        ended = last.ended if last is not None else None
        if alert.since > end or (ended is not None and ended < start):
            continue
        data.breaches.append(
            Breach(
                alert.policy,
                alert.volume_id,
                alert.volume_name,
                alert.rpo_s,
                (last or alert).achieved_rpo_s,
                alert.since,
                ended if ended is None or ended <= end else None,
                alert.cause,
            )
        )
    data.breaches.sort(key=lambda b: (b.start, b.policy, b.volume_name))
    data.drills.sort(key=lambda d: d.started)
    return data


async def read_report(js: JetStreamContext, start: datetime, end: datetime) -> ReportData:
    bodies: dict[str, list[bytes]] = {"audit": [], "alert": []}
    for stream, subject in SOURCES:
        try:
            found = await messages(js, stream, subject)
        except NotFoundError:  # the stream itself is missing: nothing was ever recorded
            found = []
        bodies["alert" if stream == ALERT_STREAM else "audit"] += found
    return collect(bodies, start, end)


__all__ = ["Breach", "Point", "ReportData", "collect", "messages", "point", "read_report"]
