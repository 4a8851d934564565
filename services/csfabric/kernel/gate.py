"""What a service asks before it acts: may policy P act on this resource now?

:class:`ActionGate` answers from a :class:`~.policywatch.PolicyWatcher`'s live view (no
network call per action) with a :class:`GateDecision`; all of its branching is the pure
:func:`decide`, so it is tested without a broker or a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .audit import Outcome
from .clock import Clock
from .durations import format_duration
from .policies import PolicyBase
from .policyread import GlobalPause
from .policywatch import PolicyWatcher

GateOutcome = Literal["act", "dry-run", "paused", "protected", "blast-radius", "unknown-policy"]


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    outcome: GateOutcome
    reason: str

    @property
    def audit_outcome(self) -> Outcome:
        """The outcome to audit a refused action with ("pending" when allowed: the caller
        audits the real result once the action is done)."""
        if self.allowed:
            return "pending"
        return "dry-run" if self.outcome == "dry-run" else "skipped"


def decide(
    *,
    key: str,
    spec: PolicyBase | None,
    operator_paused: bool,
    global_pause: GlobalPause | None,
    tags: Mapping[str, str],
    recent: Sequence[datetime],
    now: datetime,
) -> GateDecision:
    """May policy ``key`` act now?  ``recent`` holds the times this policy acted before.

    The order is the contract: no policy, kill switch, paused, protected, dry run, blast
    radius.  A dry run comes before the blast radius so that rehearsing a policy never
    uses up its budget of real actions.
    """
    if spec is None:
        return GateDecision(False, "unknown-policy", f"no policy {key} is stored")
    if global_pause is not None and global_pause.paused:
        at = global_pause.at.isoformat(timespec="seconds")
        return GateDecision(False, "paused", f"kill switch on since {at} by {global_pause.by}")
    if operator_paused or spec.paused:
        by = "an operator" if operator_paused else "its document (spec.paused)"
        return GateDecision(False, "paused", f"policy {key} is paused by {by}")
    if spec.is_protected(tags):
        return GateDecision(False, "protected", f"resource is protected ({spec.protect_tag}=true)")
    if spec.dry_run:
        return GateDecision(False, "dry-run", f"policy {key} is a dry run: decided, not done")
    limit = spec.blast_radius
    if limit is not None:
        since = now - limit.per
        count = sum(1 for t in recent if t > since)
        if count >= limit.max:
            window = format_duration(limit.per)
            return GateDecision(
                False,
                "blast-radius",
                f"blast radius reached: {count} actions in the last {window} (max {limit.max})",
            )
    return GateDecision(True, "act", f"policy {key} allows the action")


class ActionGate:
    """Checks every action of a service against its policies, live.

    Blast-radius counts are per gate (per process): only the lease holder of a service
    acts, so that is the service's count.  They start afresh when the process starts.
    """

    def __init__(self, watcher: PolicyWatcher, clock: Clock | None = None) -> None:
        self.watcher = watcher
        self.clock = clock or watcher.bus.clock
        self._acted: dict[str, deque[datetime]] = {}

    def check(
        self,
        kind: str,
        name: str,
        tags: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> GateDecision:
        """Decide, and when the answer is "act", count the action against the blast radius."""
        now = now or self.clock.now()
        key = f"{kind}.{name}"
        stored = self.watcher.get(kind, name)
        spec = stored.spec() if stored is not None else None
        acted = self._acted.setdefault(key, deque())
        limit = spec.blast_radius if spec is not None else None
        if limit is None:
            acted.clear()  # nothing to count against
        else:
            while acted and acted[0] <= now - limit.per:
                acted.popleft()
        decision = decide(
            key=key,
            spec=spec,
            operator_paused=stored is not None and stored.paused,
            global_pause=self.watcher.global_pause,
            tags=tags or {},
            recent=acted,
            now=now,
        )
        if decision.allowed and limit is not None:
            acted.append(now)
        return decision


__all__ = [
    "ActionGate",
    "GateDecision",
    "GateOutcome",
    "PolicyWatcher",
    "decide",
]
