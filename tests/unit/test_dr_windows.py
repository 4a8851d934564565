"""Snapshot windows: aligned to a time zone's clock, across DST changes, clock jumps, restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from csfabric.dr import Window, boundaries, offset_in_window, window_at, windows_between
from hypothesis import given, settings
from hypothesis import strategies as st

LONDON = "Europe/London"
ZONES = ["UTC", LONDON, "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Apia"]
EVERY = [timedelta(minutes=m) for m in (1, 5, 10, 15, 45, 60, 90, 360, 1440)]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(when: datetime, tz: str = LONDON) -> str:
    return when.astimezone(ZoneInfo(tz)).strftime("%H:%M")


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (utc(2026, 12, 4, 10, 27, 13), utc(2026, 12, 4, 10, 20), utc(2026, 12, 4, 10, 30)),
        (utc(2026, 12, 4, 10, 20), utc(2026, 12, 4, 10, 20), utc(2026, 12, 4, 10, 30)),
        # British Summer Time: London's :00/:10 are still whole ten minutes of UTC.
        (utc(2026, 7, 1, 9, 59, 59), utc(2026, 7, 1, 9, 50), utc(2026, 7, 1, 10, 0)),
    ],
)
def test_a_window_is_the_aligned_span_now_falls_in(
    now: datetime, start: datetime, end: datetime
) -> None:
    window = window_at(now, timedelta(minutes=10), LONDON)
    assert (window.start, window.end) == (start, end)
    assert window.key == start.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_windows_align_to_the_policy_zone_not_to_utc() -> None:
    # Kolkata is UTC+05:30, and 45-minute windows restart at its midnight: 10:40 UTC is
    # 16:10 there, in the window 15:45-16:30 (21 and 22 times 45 minutes after midnight).
    window = window_at(utc(2026, 12, 4, 10, 40), timedelta(minutes=45), "Asia/Kolkata")
    assert (window.start, window.end) == (utc(2026, 12, 4, 10, 15), utc(2026, 12, 4, 11, 0))
    assert local(window.start, "Asia/Kolkata") == "15:45"
    last = window_at(utc(2026, 12, 4, 18, 20), timedelta(minutes=45), "Asia/Kolkata")
    assert local(last.start, "Asia/Kolkata") == "23:15"  # cut short by midnight
    assert local(last.end, "Asia/Kolkata") == "00:00"


def test_spring_forward_skips_the_hour_that_does_not_exist() -> None:
    # 2026-03-29 01:00 GMT the clocks go to 02:00 BST: no London wall time 01:xx that night.
    starts = boundaries(
        utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30), timedelta(minutes=10), LONDON
    )
    assert [local(s) for s in starts] == ["00:30", "00:40", "00:50", "02:00", "02:10", "02:20"]
    assert all(b - a == timedelta(minutes=10) for a, b in pairwise(starts))


def test_fall_back_runs_the_repeated_hour_twice() -> None:
    # 2026-10-25 02:00 BST the clocks go back to 01:00 GMT: 01:xx happens twice.
    starts = boundaries(
        utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0), timedelta(minutes=30), LONDON
    )
    assert [local(s) for s in starts] == ["01:00", "01:30", "01:00", "01:30"]
    assert len({s for s in starts}) == 4  # four distinct instants, four keys
    assert len({Window(s, s).key for s in starts}) == 4


def test_a_daily_window_is_23_or_25_hours_on_change_days() -> None:
    day = timedelta(days=1)
    spring = window_at(utc(2026, 3, 29, 12), day, LONDON)
    autumn = window_at(utc(2026, 10, 25, 12), day, LONDON)
    assert spring.end - spring.start == timedelta(hours=23)
    assert autumn.end - autumn.start == timedelta(hours=25)
    assert local(spring.start) == local(autumn.end) == "00:00"


def test_windows_between_is_every_window_starting_in_the_range() -> None:
    got = windows_between(utc(2026, 12, 4, 10), utc(2026, 12, 4, 12), timedelta(minutes=10), LONDON)
    assert len(got) == 12
    assert got[0].start == utc(2026, 12, 4, 10)
    assert got[-1].end == utc(2026, 12, 4, 12)


@settings(max_examples=300, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    every=st.sampled_from(EVERY),
    tz=st.sampled_from(ZONES),
)
def test_any_instant_falls_in_exactly_one_window(now: datetime, every: timedelta, tz: str) -> None:
    window = window_at(now, every, tz)
    assert window.start <= now < window.end
    # A window is at most one DST shift longer than ``every`` (or cut by local midnight).
    assert timedelta(0) < window.end - window.start <= every + timedelta(hours=2)
    # Its neighbours touch it: no gap a snapshot could fall in, no overlap taking two.
    assert window_at(window.end, every, tz).start == window.end
    assert window_at(window.start - timedelta(microseconds=1), every, tz).end == window.start


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    hours=st.integers(1, 72),
    every=st.sampled_from(EVERY[:6]),
    tz=st.sampled_from(ZONES),
)
def test_windows_tile_any_range_with_distinct_keys(
    start: datetime, hours: int, every: timedelta, tz: str
) -> None:
    got = windows_between(start, start + timedelta(hours=hours), every, tz)
    assert got
    assert all(a.end == b.start for a, b in pairwise(got))
    assert len({w.key for w in got}) == len(got)
    assert got[0].start == window_at(start, every, tz).end or got[0].start == start


@settings(max_examples=200, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    every=st.sampled_from(EVERY),
    tz=st.sampled_from(ZONES),
    later=st.floats(0, 1),
)
def test_a_restart_or_clock_jump_inside_a_window_names_the_same_window(
    now: datetime, every: timedelta, tz: str, later: float
) -> None:
    # A scheduler restarted (or whose clock jumped) anywhere inside the window computes the
    # same key, so the ledger sees the window's action as already taken.
    first = window_at(now, every, tz)
    again = first.start + (first.end - first.start - timedelta(microseconds=1)) * later
    assert window_at(again, every, tz).key == first.key


@given(
    volume=st.text(min_size=1, max_size=40),
    jitter_s=st.integers(0, 3600),
    minute=st.integers(0, 59),
)
def test_a_volume_offset_is_stable_and_inside_the_jitter(
    volume: str, jitter_s: int, minute: int
) -> None:
    window = window_at(utc(2026, 12, 4, 10, minute), timedelta(hours=2), LONDON)
    jitter = timedelta(seconds=jitter_s)
    offset = offset_in_window(volume, "gold", window, jitter)
    assert offset == offset_in_window(volume, "gold", window, jitter)
    assert timedelta(0) <= offset <= max(jitter - timedelta(microseconds=1), timedelta(0))


def test_offsets_spread_volumes_over_the_jitter() -> None:
    window = window_at(utc(2026, 12, 4, 10), timedelta(minutes=10), LONDON)
    offsets = {
        offset_in_window(f"vol-{i}", "gold", window, timedelta(seconds=30)) for i in range(200)
    }
    seconds = sorted(o.total_seconds() for o in offsets)
    assert len(offsets) > 190  # not all at the window's first second
    assert seconds[0] < 3
    assert seconds[-1] > 27
