"""Retention and RPO rules: which snapshots may go, what a volume would lose, the worst case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from csfabric.dr import (
    BACKED_UP,
    IN_FLIGHT,
    Copy,
    SnapshotPolicy,
    achieved_rpo,
    newest_complete,
    p95,
    to_retire,
    worst_case_rpo,
)
from hypothesis import given
from hypothesis import strategies as st

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
LONDON, MANCHESTER = "z-london", "z-manchester"


def policy(**spec: Any) -> SnapshotPolicy:
    base: dict[str, Any] = {
        "selector": {"zone": "zone-london"},
        "every": "10m",
        "retain": {"count": 3},
        "copyTo": ["zone-manchester"],
        "rpo": "15m",
        "jitter": "30s",
    }
    return SnapshotPolicy.model_validate(base | spec)


def copy(
    n: int,
    *,
    zone: str = LONDON,
    state: str = BACKED_UP,
    volume: str = "v1",
    owner: str | None = "gold",
) -> Copy:
    return Copy(f"s{volume}-{n}", volume, zone, NOW - timedelta(minutes=10 * n), state, owner)


def test_retention_keeps_the_newest_count_and_retires_the_rest_oldest_first() -> None:
    copies = [copy(n) for n in range(6)]
    retired = to_retire(policy(), "gold", LONDON, copies, NOW)
    assert [c.snapshot_id for c in retired] == ["sv1-5", "sv1-4", "sv1-3"]


def test_retention_counts_per_volume_and_per_zone() -> None:
    copies = [
        copy(n, volume=v, zone=z)
        for n in range(4)
        for v in ("v1", "v2")
        for z in (LONDON, MANCHESTER)
    ]
    retired = to_retire(policy(), "gold", LONDON, copies, NOW)
    assert sorted(c.snapshot_id for c in retired) == ["sv1-3", "sv2-3"]
    assert {c.zone_id for c in retired} == {LONDON}


def test_retention_never_touches_other_snapshots_or_copies_in_flight() -> None:
    copies = [
        *(copy(n, owner=None) for n in range(5)),  # manual snapshots
        *(copy(n + 10, owner="silver") for n in range(5)),  # another policy's
        copy(20, state="Copying"),
        copy(21, state="BackingUp"),
    ]
    assert to_retire(policy(retain={"count": 1}), "gold", LONDON, copies, NOW) == []


def test_the_newest_complete_copy_survives_any_max_age() -> None:
    copies = [copy(n + 100) for n in range(3)]  # all older than a day
    retired = to_retire(policy(retain={"count": 5, "maxAge": "1h"}), "gold", LONDON, copies, NOW)
    assert [c.snapshot_id for c in retired] == ["sv1-102", "sv1-101"]


def test_the_newest_complete_survives_when_newer_ones_are_still_copying() -> None:
    copies = [copy(0, state="Copying"), copy(1, state="Copying"), copy(2), copy(3)]
    retired = to_retire(policy(retain={"count": 2}), "gold", LONDON, copies, NOW)
    assert [c.snapshot_id for c in retired] == ["sv1-3"]


copies_strategy = st.lists(
    st.builds(
        Copy,
        snapshot_id=st.uuids().map(str),
        volume_id=st.sampled_from(["v1", "v2", "v3"]),
        zone_id=st.sampled_from([LONDON, MANCHESTER]),
        created=st.integers(0, 30 * 24 * 60).map(lambda m: NOW - timedelta(minutes=m)),
        state=st.sampled_from([BACKED_UP, *sorted(IN_FLIGHT), "Error"]),
        policy=st.sampled_from(["gold", "silver", None]),
    ),
    max_size=60,
)


@given(copies=copies_strategy, count=st.integers(1, 10), max_age_h=st.none() | st.integers(1, 400))
def test_retention_properties(copies: list[Copy], count: int, max_age_h: int | None) -> None:
    retain: dict[str, Any] = {"count": count}
    if max_age_h is not None:
        retain["maxAge"] = f"{max_age_h}h"
    retired = to_retire(policy(retain=retain), "gold", LONDON, copies, NOW)
    ids = [c.snapshot_id for c in retired]
    assert len(ids) == len(set(ids))
    assert all(c.policy == "gold" and c.zone_id == LONDON for c in retired)  # own, this zone
    assert all(c.state not in IN_FLIGHT for c in retired)  # never one still being made
    assert retired == sorted(retired, key=lambda c: (c.created, c.snapshot_id))  # oldest first
    for volume in {c.volume_id for c in copies}:
        own = [c for c in copies if (c.volume_id, c.zone_id, c.policy) == (volume, LONDON, "gold")]
        left = [c for c in own if c not in retired]
        newest = newest_complete(own)
        # A volume that had a complete copy keeps one: retention never empties a zone.
        assert newest is None or newest_complete(left) is not None
        if max_age_h is None:
            assert len(left) >= min(count, len(own))


def test_achieved_rpo_is_the_age_of_the_newest_complete_dr_copy() -> None:
    dr = [
        copy(1, zone=MANCHESTER),
        copy(0, zone=MANCHESTER, state="Copying"),
        copy(3, zone=MANCHESTER),
    ]
    assert achieved_rpo(NOW, dr) == timedelta(minutes=10)
    assert achieved_rpo(NOW, [copy(0, zone=MANCHESTER, state="Copying")]) is None
    assert achieved_rpo(NOW - timedelta(hours=1), [copy(0)]) == timedelta(0)  # never negative


@pytest.mark.parametrize(
    ("samples", "expected"),
    [([], 0), ([5], 5), (list(range(1, 21)), 19), (list(range(1, 101)), 95), ([9, 1, 5], 9)],
)
def test_p95_is_the_nearest_rank(samples: list[int], expected: int) -> None:
    assert p95([timedelta(seconds=s) for s in samples]) == timedelta(seconds=expected)


def test_the_seed_schedule_cannot_hold_its_rpo_once_copy_time_counts() -> None:
    seed = policy(every="15m", jitter="30s", rpo="15m")
    assert worst_case_rpo(seed) == timedelta(minutes=15, seconds=30)
    assert worst_case_rpo(seed, [timedelta(minutes=2)] * 20) == timedelta(minutes=17, seconds=30)
    ten = policy(every="10m", jitter="30s", rpo="15m")
    assert worst_case_rpo(ten, [timedelta(minutes=2)] * 20) < ten.rpo
    local = policy(copyTo=[], every="10m")  # no copy: measured in its own zone
    assert worst_case_rpo(local, [timedelta(hours=5)]) == timedelta(minutes=10, seconds=30)
