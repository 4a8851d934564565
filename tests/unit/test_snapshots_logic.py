"""The snapshots service's pure decisions: due times, classification, copies, retention."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from csfabric.dr import Copy, SnapshotPolicy, VolumeRef, Window, window_at, windows_between
from csfabric.snapshots.logic import (
    classify,
    copies_in_zone,
    keys_of,
    may_retry,
    plan_window,
    retire,
    retry_delay,
    store_state,
    volume_ref,
)
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.memory

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def policy(**spec: Any) -> SnapshotPolicy:
    body: dict[str, Any] = {
        "selector": {"zone": "zone-london", "tags": {"csfabric:dr-tier": "gold"}},
        "every": "10m",
        "timezone": "Europe/London",
        "retain": {"count": 3},
        "copyTo": ["zone-manchester"],
        "rpo": "15m",
        "jitter": "30s",
    }
    return SnapshotPolicy.model_validate(body | spec)


def vol(i: int, tier: str = "gold", zone: str = "zone-london") -> VolumeRef:
    return VolumeRef(
        id=f"v{i}",
        name=f"vol-{i}",
        zone_id=f"id-{zone}",
        zone_name=zone,
        tags={"csfabric:dr-tier": tier},
    )


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (531, "skip"),
        (535, "skip"),
        (431, "skip"),
        (530, "retry"),
        (533, "retry"),
        (534, "retry"),
        (None, "retry"),
        (429, "retry"),
    ],
)
def test_classify(code: int | None, verdict: str) -> None:
    assert classify(code) == verdict


def test_plan_selects_in_scope_only_and_spreads_over_jitter() -> None:
    p = policy()
    window = window_at(T0, p.every, p.timezone)
    volumes = [vol(i) for i in range(50)] + [vol(99, "silver"), vol(98, zone="zone-manchester")]
    due = plan_window(p, "gold", volumes, window)
    assert {d.volume_id for d in due} == {f"v{i}" for i in range(50)}
    assert all(window.start <= d.at < window.start + p.jitter for d in due)
    assert [d.at for d in due] == sorted(d.at for d in due)
    assert len({d.at for d in due}) > 40, "spread, not all at the first second"
    assert plan_window(p, "gold", volumes, window) == due, "stable across restarts"


def test_protected_volume_not_planned() -> None:
    p = policy()
    protected = VolumeRef(
        id="vp",
        name="p",
        zone_id="z",
        zone_name="zone-london",
        tags={"csfabric:dr-tier": "gold", "csfabric:protect": "true"},
    )
    assert plan_window(p, "gold", [protected], window_at(T0, p.every, p.timezone)) == []


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=600))
def test_every_volume_due_inside_its_window(seed: int, minutes: int) -> None:
    p = policy(every=f"{max(minutes, 1)}m", jitter="30s")
    at = T0 + timedelta(seconds=seed)
    window = window_at(at, p.every, p.timezone)
    [due] = plan_window(p, "gold", [vol(seed)], window)
    assert window.start <= due.at < window.end
    assert window.start <= at < window.end


@settings(max_examples=50)
@given(st.integers(min_value=0, max_value=365 * 24 * 6))
def test_windows_across_dst_are_contiguous_and_named_once(offset: int) -> None:
    # Any two days of the year in London (both DST changes included over the range).
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=10 * offset)
    windows = windows_between(
        start, start + timedelta(days=2), timedelta(minutes=10), "Europe/London"
    )
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))
    assert len({w.key for w in windows}) == len(windows)


@pytest.mark.parametrize(
    ("attempt", "delay"), [(1, 5.0), (2, 10.0), (3, 20.0), (5, 60.0), (9, 60.0)]
)
def test_retry_delay(attempt: int, delay: float) -> None:
    assert retry_delay(attempt, 5.0, 60.0) == delay


def test_may_retry_only_inside_the_window() -> None:
    w = Window(T0, T0 + timedelta(minutes=10))
    assert may_retry(T0 + timedelta(minutes=9), 30, w, 2)
    assert not may_retry(T0 + timedelta(minutes=9, seconds=30), 30, w, 2)


@pytest.mark.parametrize(
    ("row", "state"),
    [
        ({"state": "BackedUp"}, "BackedUp"),  # no datastorestate: an older CloudStack
        ({"state": "BackedUp", "datastorestate": "Ready"}, "BackedUp"),
        ({"state": "BackedUp", "datastorestate": "Copying"}, "Copying"),
        ({"state": "BackedUp", "datastorestate": "Creating"}, "Copying"),
        ({"state": "BackingUp", "datastorestate": "Ready"}, "BackingUp"),
        ({"state": "BackedUp", "datastorestate": "Failed"}, "Failed"),
    ],
)
def test_store_state(row: dict[str, Any], state: str) -> None:
    assert store_state(row) == state


def row(sid: str, created: datetime, store: str | None = "Ready", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": sid,
        "volumeid": "v1",
        "created": created.strftime("%Y-%m-%dT%H:%M:%S+0000"),
        "state": "BackedUp",
        "tags": [
            {"key": "csfabric:policy", "value": "gold"},
            {"key": "csfabric:key", "value": f"k-{sid}"},
        ],
    }
    if store is not None:
        out["datastorestate"] = store
    return out | extra


def test_copies_in_zone_one_per_snapshot_complete_if_any_store_ready() -> None:
    rows = [row("s1", T0, "Copying"), row("s1", T0, "Ready"), row("s2", T0, "Copying")]
    copies = {c.snapshot_id: c for c in copies_in_zone(rows, "z")}
    assert copies["s1"].complete
    assert not copies["s2"].complete
    assert copies["s1"].policy == "gold"
    assert copies["s1"].created == T0
    assert keys_of(rows) == {"k-s1", "k-s2"}


def copies(n: int, zone: str = "z", volume: str = "v1", state: str = "BackedUp") -> list[Copy]:
    return [
        Copy(f"{volume}-s{i}", volume, zone, T0 + timedelta(minutes=10 * i), state, "gold")
        for i in range(n)
    ]


def test_retire_per_volume_oldest_first() -> None:
    p = policy()
    both = copies(5, volume="a") + copies(2, volume="b")
    gone = retire(p, "gold", "z", both, T0 + timedelta(hours=1))
    assert [c.snapshot_id for c in gone] == ["a-s0", "a-s1"], "b has only 2 of 3"


def test_retire_never_in_flight_nor_others() -> None:
    p = policy()
    mine = copies(5)
    flying = [Copy("fly", "v1", "z", T0 - timedelta(hours=1), "Copying", "gold")]
    theirs = [Copy("other", "v1", "z", T0 - timedelta(hours=2), "BackedUp", "someone-else")]
    gone = retire(p, "gold", "z", mine + flying + theirs, T0 + timedelta(hours=1))
    assert {c.snapshot_id for c in gone} == {"v1-s0", "v1-s1"}


@given(
    st.lists(st.sampled_from(["BackedUp", "Copying", "Error"]), min_size=0, max_size=30),
    st.integers(min_value=1, max_value=10),
)
def test_retire_properties(states: list[str], count: int) -> None:
    p = policy(retain={"count": count, "maxAge": "1h"})
    rows = [
        Copy(f"s{i}", "v1", "z", T0 + timedelta(minutes=i), s, "gold") for i, s in enumerate(states)
    ]
    now = T0 + timedelta(hours=2)
    gone = retire(p, "gold", "z", rows, now)
    assert all(c.state != "Copying" for c in gone), "never one still copying"
    complete = [c for c in rows if c.complete]
    if complete:
        newest = max(complete, key=lambda c: c.created)
        assert newest not in gone, "never the newest complete copy"
    assert [c.created for c in gone] == sorted(c.created for c in gone)


def test_volume_ref_from_list_volumes_row() -> None:
    ref = volume_ref(
        {
            "id": "v",
            "name": "n",
            "zoneid": "z",
            "zonename": "zone-london",
            "type": "ROOT",
            "projectid": "p",
            "project": "alpha",
            "domainpath": "ROOT/gov-sandbox",
            "tags": [{"key": "csfabric:dr-tier", "value": "gold"}],
        }
    )
    assert (ref.project_id, ref.domain_path, ref.tags) == (
        "p",
        "ROOT/gov-sandbox",
        {"csfabric:dr-tier": "gold"},
    )
    assert policy(selector={"zone": "zone-london", "domain": "ROOT/gov-sandbox"}).selects(ref)
