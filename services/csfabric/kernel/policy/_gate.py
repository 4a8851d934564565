"""What a service asks before it acts: may policy P act on this resource now?

:class:`ActionGate` answers from a :class:`~._watch.PolicyWatcher`'s live view (no
network call per action, except one compare-and-set on the shared blast-radius window of
a policy that has one) with a :class:`GateDecision`; all of its branching is the pure
:func:`decide`, so it is tested without a broker or a clock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from csfabric.kernel._audit import Outcome
from csfabric.kernel._clock import Clock
from csfabric.kernel._durations import format_duration
from csfabric.kernel.policy._blast import BlastWindows, KvBlastWindows
from csfabric.kernel.policy._model import PolicyBase
from csfabric.kernel.policy._read import GlobalPause
from csfabric.kernel.policy._watch import PolicyWatcher
from csfabric.kernel.policy.errors import BlastStateUnavailable

log = logging.getLogger(__name__)

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

    Blast-radius windows are shared (:mod:`._blast`): every replica and every restart of
    every service counts against the same window of a policy, so ``max`` holds for the
    whole policy.  When that shared state cannot be seen, an action under a blast radius
    is refused ("blast-radius state unavailable"); actions without one need no network.
    """

    def __init__(
        self,
        watcher: PolicyWatcher,
        clock: Clock | None = None,
        *,
        windows: BlastWindows | None = None,
    ) -> None:
        self.watcher = watcher
        self.clock = clock or watcher.bus.clock
        self.windows: BlastWindows = windows or KvBlastWindows(watcher.bus)

    async def check(
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
        global_pause = self.watcher.global_pause

        def judge(recent: Sequence[datetime]) -> GateDecision:
            return decide(
                key=key,
                spec=spec,
                operator_paused=stored is not None and stored.paused,
                global_pause=global_pause,
                tags=tags or {},
                recent=recent,
                now=now,
            )

        # Every refusal but the budget's needs no window: a dry run never touches it.
        decision = judge(())
        limit = spec.blast_radius if spec is not None else None
        if not decision.allowed or limit is None:
            return decision
        try:
            return await self.windows.admit(key, limit.per, now, judge)
        except BlastStateUnavailable as exc:
            log.warning("gate refuses %s: blast-radius state unavailable (%s)", key, exc)
            return GateDecision(
                False, "blast-radius", f"blast-radius state unavailable ({exc}); not acting"
            )


__all__ = [
    "ActionGate",
    "GateDecision",
    "GateOutcome",
    "PolicyWatcher",
    "decide",
]
