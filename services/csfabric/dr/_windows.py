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


def _day_boundaries(day: date, every: timedelta, tz: ZoneInfo) -> list[datetime]:
    if every >= _DAY:
        days = every // _DAY
        if day.toordinal() % days:
            return []
        return _instants(datetime.combine(day, time()), tz)
    out: list[datetime] = []
    wall = datetime.combine(day, time())
    while wall.date() == day:
        out.extend(_instants(wall, tz))
        wall += every
    return out


def boundaries(start: datetime, end: datetime, every: timedelta, tz: str) -> list[datetime]:
    """Every window start in ``[start, end)``, in order (UTC)."""
    zone = ZoneInfo(tz)
    horizon = max(every, _DAY)
    day = (start - horizon).astimezone(zone).date()
    last = (end + horizon).astimezone(zone).date()
    out: list[datetime] = []
    while day <= last:
        out.extend(b for b in _day_boundaries(day, every, zone) if start <= b < end)
        day += _DAY
    return sorted(set(out))


def window_at(now: datetime, every: timedelta, tz: str) -> Window:
    """The window ``now`` falls in."""
    span = max(every, _DAY) * 2 + timedelta(hours=3)
    starts = boundaries(now - span, now + span, every, tz)
    before = [b for b in starts if b <= now]
    after = [b for b in starts if b > now]
    return Window(before[-1], after[0])


def windows_between(start: datetime, end: datetime, every: timedelta, tz: str) -> list[Window]:
    """The windows that start in ``[start, end)``."""
    starts = boundaries(start, end + max(every, _DAY) * 2, every, tz)
    return [Window(a, b) for a, b in itertools.pairwise(starts) if a < end]


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
