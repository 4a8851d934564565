"""Replication's pure rules: rows to copies, when to copy, RPO samples, breach edges, lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from csfabric.dr import BACKED_UP, Copy, VolumeRef
from csfabric.replication.logic import (
    Attempt,
    OpenBreach,
    VolumeView,
    copies_to_make,
    copy_from_row,
    merge_copies,
    new_lags,
    retry_delay,
    sample,
    transitions,
)
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
RPO = timedelta(minutes=15)
VOL = VolumeView(VolumeRef(id="v1", name="ledger", zone_id="lon"), T0 - timedelta(days=1))


def snap(sid: str, minutes_ago: float, zone: str = "lon", state: str = BACKED_UP) -> Copy:
    return Copy(sid, "v1", zone, T0 - timedelta(minutes=minutes_ago), state, "gold")


@pytest.mark.parametrize(
    ("row", "state"),
    [
        ({"state": "BackedUp", "datastorestate": "Ready"}, BACKED_UP),
        ({"state": "BackedUp", "datastorestate": "Copying"}, "Copying"),
        ({"state": "BackedUp", "datastorestate": "Allocated"}, "Copying"),
        ({"state": "BackedUp"}, BACKED_UP),  # no showunique=false rows: the state decides
        ({"state": "Copying"}, "Copying"),
        ({"state": "BackedUp", "datastorestate": "Error"}, "Error"),  # will never complete
    ],
)
def test_a_dr_row_is_complete_only_when_its_store_is_ready(row: dict[str, str], state: str) -> None:
    full = {"id": "s1", "volumeid": "v1", "created": "2026-12-06T10:00:00+0000"} | row
    full["tags"] = [{"key": "csfabric:policy", "value": "gold"}]  # type: ignore[assignment]
    copy = copy_from_row(full, "man")
    assert (copy.state, copy.zone_id, copy.policy) == (state, "man", "gold")
    assert copy.created == T0


def test_several_stores_in_a_zone_count_once_and_the_complete_one_wins() -> None:
    merged = merge_copies([snap("s1", 1, "man", "Copying"), snap("s1", 1, "man")])
    assert [c.state for c in merged] == [BACKED_UP]


@pytest.mark.parametrize(
    ("minutes_ago", "in_dr", "attempt", "expected"),
    [
        (1, False, None, []),  # inside the grace: zoneids may still be copying
        (3, False, None, [1]),
        (3, True, None, []),  # already there (in any state)
        (90, False, None, []),  # past the horizon
        (3, False, Attempt(1, T0 + timedelta(seconds=30)), []),  # backing off
        (3, False, Attempt(1, T0), [2]),
        (3, False, Attempt(3, T0), []),  # given up
    ],
)
def test_when_a_copy_is_made(
    minutes_ago: float, in_dr: bool, attempt: Attempt | None, expected: list[int]
) -> None:
    local = [snap("s1", minutes_ago)]
    dr = [snap("s1", minutes_ago, "man", "Copying")] if in_dr else []
    tasks = copies_to_make(
        local,
        dr,
        "man",
        T0,
        grace=timedelta(minutes=2),
        horizon=timedelta(hours=1),
        attempts={} if attempt is None else {("s1", "man"): attempt},
        max_attempts=3,
    )
    assert [t.attempt for t in tasks] == expected


def test_a_copy_whose_store_failed_is_made_again() -> None:
    dr = [snap("s1", 5, "man", "Error")]
    tasks = copies_to_make(
        [snap("s1", 5)],
        dr,
        "man",
        T0,
        grace=timedelta(minutes=2),
        horizon=timedelta(hours=1),
        attempts={},
        max_attempts=3,
    )
    assert [t.snapshot_id for t in tasks] == ["s1"]


def test_snapshots_older_than_the_newest_dr_copy_are_not_copied_back() -> None:
    """Retention removed them from the DR zone; they would not improve the RPO either."""
    local = [snap("retired", 30), snap("kept", 5)]
    tasks = copies_to_make(
        local,
        [snap("kept", 5, "man")],
        "man",
        T0,
        grace=timedelta(0),
        horizon=timedelta(hours=1),
        attempts={},
        max_attempts=3,
    )
    assert tasks == []


def test_incomplete_local_snapshots_are_not_copied_and_newest_go_first() -> None:
    local = [snap("old", 30), snap("new", 5), snap("busy", 10, state="BackingUp")]
    tasks = copies_to_make(
        local,
        [],
        "man",
        T0,
        grace=timedelta(0),
        horizon=timedelta(hours=1),
        attempts={},
        max_attempts=3,
    )
    assert [t.snapshot_id for t in tasks] == ["new", "old"]


@given(st.integers(1, 30), st.integers(1, 600), st.integers(1, 3600))
def test_backoff_grows_and_stays_under_its_cap(attempt: int, base_s: int, cap_s: int) -> None:
    base, cap = timedelta(seconds=base_s), timedelta(seconds=cap_s)
    delay = retry_delay(attempt, base, cap)
    assert delay <= cap
    assert delay == min(base * 2 ** (attempt - 1), cap)
    assert retry_delay(attempt + 1, base, cap) >= delay


@given(
    st.lists(st.tuples(st.floats(0, 600), st.booleans()), max_size=8),
    st.floats(0, 600),
)
def test_sample_rpo_is_now_minus_the_newest_complete_dr_copy(
    copies: list[tuple[float, bool]], rpo_minutes: float
) -> None:
    rpo = timedelta(minutes=rpo_minutes)
    dr = [
        snap(f"s{i}", ago, "man", BACKED_UP if done else "Copying")
        for i, (ago, done) in enumerate(copies)
    ]
    s = sample(T0, VOL, [], dr, rpo)
    done = [ago for ago, ok in copies if ok]
    if not done:
        assert s.achieved_rpo_s is None
        assert s.breach  # a day old and never copied
        return
    expected = min(done) * 60
    assert s.achieved_rpo_s == pytest.approx(expected, abs=1e-3)
    assert s.breach == (timedelta(seconds=s.achieved_rpo_s) > rpo)


@given(st.lists(st.booleans(), min_size=1, max_size=12))
def test_one_breach_alert_per_excursion_and_one_recovery(states: list[bool]) -> None:
    """Whatever the sequence of over/under, alerts alternate and start with a breach."""
    open_breaches: dict[str, OpenBreach] = {}
    kinds: list[str] = []
    for i, over in enumerate(states):
        now = T0 + timedelta(minutes=10 * i)
        ago = 20 if over else 5
        s = sample(now, VOL, [], [snap("s", (T0 - now).total_seconds() / 60 + ago, "man")], RPO)
        assert s.breach == over
        open_breaches, changes = transitions(
            open_breaches, [s], {"v1": VOL.since}, RPO, now, {"v1": "copies stopped"}
        )
        kinds.extend(c.kind for c in changes)
        assert ("v1" in open_breaches) == over
    expected: list[str] = []
    for over in states:
        if over and (not expected or expected[-1] == "recovered"):
            expected.append("breach")
        elif not over and expected and expected[-1] == "breach":
            expected.append("recovered")
    assert kinds == expected


def test_a_breach_starts_when_the_newest_copy_turned_rpo_old() -> None:
    s = sample(T0, VOL, [], [snap("s", 20, "man")], RPO)
    _, [change] = transitions({}, [s], {"v1": VOL.since}, RPO, T0, {"v1": "x"})
    assert change.since == T0 - timedelta(minutes=5)
    assert (change.kind, change.cause) == ("breach", "x")


def test_an_open_breach_of_a_volume_gone_from_scope_recovers() -> None:
    open_breaches = {"gone": OpenBreach(T0 - timedelta(hours=1), "copies stopped")}
    after, [change] = transitions(open_breaches, [], {}, RPO, T0, {})
    assert after == {}
    assert change.kind == "recovered"
    assert "left the policy's scope" in change.cause


def test_lag_is_counted_for_copies_watched_or_made_since_the_last_sweep() -> None:
    prev = T0 - timedelta(seconds=30)
    dr = [snap("watched", 3, "man"), snap("fresh", 0.25, "man"), snap("old", 60, "man")]
    lags = new_lags(dr, {("watched", "man")}, set(), prev, T0)
    assert {(g.snapshot_id, g.seconds) for g in lags} == {("watched", 180.0), ("fresh", 15.0)}
    # Once recorded, never again; incomplete copies are not counted.
    again = new_lags(dr, {("watched", "man")}, {("watched", "man"), ("fresh", "man")}, prev, T0)
    assert again == []
    busy = [snap("busy", 1, "man", "Copying")]
    assert new_lags(busy, {("busy", "man")}, set(), prev, T0) == []


STATES = st.sampled_from([BACKED_UP, "Copying", "BackingUp", "CreatedOnPrimary"])


@given(
    st.lists(st.tuples(st.floats(0, 120), STATES, st.booleans()), max_size=10),
    st.integers(0, 10),
    st.integers(11, 100),
)
def test_copies_are_of_complete_snapshots_newer_than_the_zones_newest_inside_the_bounds(
    rows: list[tuple[float, str, bool]], grace_m: int, horizon_m: int
) -> None:
    local = [snap(f"s{i}", ago, state=state) for i, (ago, state, _) in enumerate(rows)]
    dr = [snap(f"s{i}", ago, "man", "Copying") for i, (ago, _, there) in enumerate(rows) if there]
    grace, horizon = timedelta(minutes=grace_m), timedelta(minutes=horizon_m)
    tasks = copies_to_make(
        local, dr, "man", T0, grace=grace, horizon=horizon, attempts={}, max_attempts=3
    )
    by_id = {c.snapshot_id: c for c in local}
    newest_dr = max((c.created for c in dr), default=None)  # every row is volume v1's
    for task in tasks:
        source = by_id[task.snapshot_id]
        assert source.complete
        assert newest_dr is None or source.created > newest_dr  # it improves the RPO
        assert grace <= T0 - source.created <= horizon
        assert (task.zone_id, task.attempt) == ("man", 1)
    expected = {
        c.snapshot_id
        for c in local
        if c.complete
        and (newest_dr is None or c.created > newest_dr)
        and grace <= T0 - c.created <= horizon
    }
    assert {t.snapshot_id for t in tasks} == expected
    assert [t.created for t in tasks] == sorted((t.created for t in tasks), reverse=True)
