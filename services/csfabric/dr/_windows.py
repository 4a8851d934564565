"""Snapshot windows: aligned to a time zone's wall clock, across DST changes.

A policy with ``every: 10m`` and ``timezone: Europe/London`` has a window starting at each
instant whose London wall time is a multiple of 10 minutes after local midnight.  When the
clocks go forward, the wall times that do not exist start no window; when they go back, the
wall times that happen twice start a window each time (each is its own instant).  A window
is named by its start in UTC, so a restarted scheduler, a second replica and an auditor all
name the same window the same way.  Pure: ``now`` is always given.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_DAY = timedelta(days=1)
_MARGIN = timedelta(hours=3)


@dataclass(frozen=True, order=True)
class Window:
    """``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """The window's name: its start, ``2026-12-04T10:20:00Z``."""
        return self.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _instants(wall: datetime, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants at which ``tz``'s clock shows ``wall`` (0, 1 or 2 of them)."""
    found = []
    for fold in (0, 1):
        local = wall.replace(tzinfo=tz, fold=fold)
        instant = local.astimezone(UTC)
        # A wall time in a gap round-trips to another wall time: it does not exist.
        if instant.astimezone(tz).replace(tzinfo=None) == wall and instant not in found:
            found.append(instant)
    return found


def _day_boundaries(
    day: date, every: timedelta, tz: ZoneInfo, low: datetime, high: datetime
) -> list[datetime]:
    """The window starts of local ``day`` whose wall time lies in ``[low, high]``."""
    midnight = datetime.combine(day, time())
    if every >= _DAY:
        days = every // _DAY
        if day.toordinal() % days or not low <= midnight <= high:
            return []
        return _instants(midnight, tz)
    out: list[datetime] = []
    first = max(0, (low - midnight) // every)
    wall = midnight + first * every
    while wall.date() == day and wall <= high:
        out.extend(_instants(wall, tz))
        wall += every
    return out


def boundaries(start: datetime, end: datetime, every: timedelta, tz: str) -> list[datetime]:
    """Every window start in ``[start, end)``, in order (UTC)."""
    zone = ZoneInfo(tz)
    # The wall date of any instant in the range lies between these (a day of margin for
    # a clock set back across midnight).
    day = start.astimezone(zone).date() - _DAY
    last = end.astimezone(zone).date() + _DAY
    # Wall times of the instants in the range: an offset change moves them by two hours
    # at most.
    low = start.astimezone(zone).replace(tzinfo=None) - _MARGIN
    high = end.astimezone(zone).replace(tzinfo=None) + _MARGIN
    out: list[datetime] = []
    while day <= last:
        out.extend(b for b in _day_boundaries(day, every, zone, low, high) if start <= b < end)
        day += _DAY
    return sorted(set(out))


def window_at(now: datetime, every: timedelta, tz: str) -> Window:
    """The window ``now`` falls in."""
    # Look a little around ``now`` first (a DST shift is at most two hours); widen only
    # where a zone skipped more than that (Samoa skipped a whole day in 2011).
    span = every + _MARGIN
    while True:
        starts = boundaries(now - span, now + span, every, tz)
        before = [b for b in starts if b <= now]
        after = [b for b in starts if b > now]
        if before and after:
            return Window(before[-1], after[0])
        span *= 2


def windows_between(start: datetime, end: datetime, every: timedelta, tz: str) -> list[Window]:
    """The windows that start in ``[start, end)``."""
    starts = boundaries(start, end, every, tz)
    if not starts:
        return []
    return [
        Window(a, b) for a, b in itertools.pairwise([*starts, window_at(starts[-1], every, tz).end])
    ]


def offset_in_window(volume_id: str, policy: str, window: Window, jitter: timedelta) -> timedelta:
    """Where in its window a volume is due: a stable spread over ``jitter``.

    Derived from the volume, policy and window alone, so every replica and every restart
    agrees, and volumes do not all hit CloudStack at the window's first second.
    """
    if jitter <= timedelta(0):
        return timedelta(0)
    digest = hashlib.blake2b(f"{policy}|{volume_id}|{window.key}".encode(), digest_size=8)
    micro = int.from_bytes(digest.digest(), "big") % int(jitter / timedelta(microseconds=1))
    return timedelta(microseconds=micro)


__all__ = ["Window", "boundaries", "offset_in_window", "window_at", "windows_between"]
