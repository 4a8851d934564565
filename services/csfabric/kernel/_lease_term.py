"""A lease's term as this replica's own monotonic clock sees it: deadlines only, no KV I/O.

This is the "no clock is trusted across replicas" half of :mod:`csfabric.kernel._leases`:
the holder acts until ``sent + ttl - ttl/3`` (``sent`` = when the take or the last renewal
request was sent), and a taker waits until it has seen one revision unchanged for a full
``ttl`` from when its read answered.  :class:`~csfabric.kernel._leases.Lease` does the KV
writes and the fences, and keeps this bookkeeping in a :class:`Term`.
"""

from __future__ import annotations

import math
from typing import Any

from csfabric.kernel._clock import Clock


class Term:
    """Our last write, the token of our term, its deadline, and what we saw of others'."""

    def __init__(self, ttl: float, clock: Clock) -> None:
        self.ttl = ttl
        self.clock = clock
        self.revision: int | None = None  # our last write
        self.token: int | None = None  # the revision that began our term
        self.deadline: float | None = None  # monotonic: we act only before it
        self.seen: tuple[int, float] | None = None  # another's revision, first seen at
        self.renewed = True  # did the last renewal work (else retry sooner)

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    @property
    def held(self) -> bool:
        """Whether our term lasts by our own monotonic clock."""
        return self.deadline is not None and self.clock.monotonic() < self.deadline

    def took(self, revision: int, sent: float, *, new_term: bool) -> None:
        self.revision = revision
        if new_term or self.token is None:
            self.token = revision
        # Stop a third of the TTL early, so our acts end before anyone may take over.
        self.deadline = sent + self.ttl - self.renew_every
        self.seen = None
        self.renewed = True

    def end(self) -> bool:
        """Forget our term (lost, released, run out); True when there was one to forget."""
        had = self.revision is not None
        self.revision = None
        self.token = None
        self.deadline = None
        return had

    def stale(self, revision: int, observed: float, current: dict[str, Any]) -> bool:
        """Has this revision of another holder stood unchanged for a full TTL, by our clock?"""
        if self.seen is None or self.seen[0] != revision:
            self.seen = (revision, observed)
            return False
        return observed - self.seen[1] >= self._wait(current)

    def until_take(self, poll_every: float) -> float:
        if self.seen is None:
            return poll_every
        left = self.seen[1] + self.ttl - self.clock.monotonic()
        return min(poll_every, left) if left > 0 else poll_every

    def until_renewal(self, poll_every: float) -> float:
        step = self.renew_every if self.renewed else poll_every
        left = (self.deadline or 0.0) - self.clock.monotonic()
        return max(0.0, min(step, left))

    def _wait(self, current: dict[str, Any]) -> float:
        theirs = current.get("ttl")
        if isinstance(theirs, int | float) and math.isfinite(theirs) and theirs > 0:
            return max(self.ttl, float(theirs))
        return self.ttl


__all__ = ["Term"]
