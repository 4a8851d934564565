"""The action gate's decision table (pure ``decide``) and its blast-radius guarantee."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from csfabric.kernel import SteppedClock
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import PolicyBase
from csfabric.kernel.policy._blast import MemoryBlastWindows
from csfabric.kernel.policy._gate import ActionGate, GateDecision, PolicyWatcher, decide
from csfabric.kernel.policy._read import GLOBAL_PAUSE_KEY, POLICY_BUCKET, GlobalPause
from hypothesis import given
from hypothesis import strategies as st
from nats.js.kv import KV_DEL, KeyValue

from tests.policykinds import TEST_KIND, register_test_kinds

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KILL = GlobalPause(paused=True, by="os:alice", at=NOW - timedelta(minutes=5))
LIFTED = GlobalPause(paused=False, by="os:alice", at=NOW - timedelta(minutes=1))


def spec(**fields: Any) -> PolicyBase:
    return PolicyBase.model_validate(fields)


def gate(
    policy: PolicyBase | None,
    *,
    operator_paused: bool = False,
    global_pause: GlobalPause | None = None,
    tags: dict[str, str] | None = None,
    recent: list[datetime] | None = None,
) -> GateDecision:
    return decide(
        key="TestPolicy.p",
        spec=policy,
        operator_paused=operator_paused,
        global_pause=global_pause,
        tags=tags or {},
        recent=recent or [],
        now=NOW,
    )


PROTECT = {"csfabric:protect": "true"}
BUDGET = {"blastRadius": {"max": 2, "per": "1h"}}
TWO_RECENT = [NOW - timedelta(minutes=50), NOW - timedelta(minutes=1)]


@pytest.mark.parametrize(
    ("policy", "kwargs", "outcome"),
    [
        pytest.param(None, {}, "unknown-policy", id="no policy"),
        pytest.param(None, {"global_pause": KILL}, "unknown-policy", id="unknown beats kill"),
        pytest.param(spec(), {}, "act", id="plain policy acts"),
        pytest.param(spec(), {"global_pause": KILL}, "paused", id="kill switch"),
        pytest.param(spec(), {"global_pause": LIFTED}, "act", id="kill switch lifted"),
        pytest.param(spec(dryRun=True), {"global_pause": KILL}, "paused", id="kill beats dry run"),
        pytest.param(spec(), {"global_pause": KILL, "tags": PROTECT}, "paused", id="kill first"),
        pytest.param(spec(), {"operator_paused": True}, "paused", id="operator pause"),
        pytest.param(spec(paused=True), {}, "paused", id="spec.paused"),
        pytest.param(spec(paused=True), {"tags": PROTECT}, "paused", id="paused beats protect"),
        pytest.param(spec(), {"tags": PROTECT}, "protected", id="csfabric:protect"),
        pytest.param(spec(), {"tags": {"csfabric:protect": "True"}}, "protected", id="True"),
        pytest.param(spec(), {"tags": {"csfabric:protect": "false"}}, "act", id="protect=false"),
        pytest.param(spec(protectTag="keep"), {"tags": {"keep": "true"}}, "protected", id="own"),
        pytest.param(spec(protectTag="keep"), {"tags": PROTECT}, "protected", id="always wins"),
        pytest.param(spec(dryRun=True, **BUDGET), {"tags": PROTECT}, "protected", id="p>dry"),
        pytest.param(spec(dryRun=True), {}, "dry-run", id="dry run"),
        pytest.param(spec(dryRun=True, **BUDGET), {"recent": TWO_RECENT}, "dry-run", id="dry>br"),
        pytest.param(spec(**BUDGET), {"recent": TWO_RECENT}, "blast-radius", id="budget used"),
        pytest.param(spec(**BUDGET), {"recent": TWO_RECENT[1:]}, "act", id="budget left"),
        pytest.param(
            spec(**BUDGET),
            {"recent": [NOW - timedelta(hours=1), NOW - timedelta(minutes=1)]},
            "act",
            id="an action exactly one window ago no longer counts",
        ),
        pytest.param(spec(), {"recent": TWO_RECENT * 50}, "act", id="no blast radius: no limit"),
    ],
)
def test_decision_table(policy: PolicyBase | None, kwargs: dict[str, Any], outcome: str) -> None:
    decision = gate(policy, **kwargs)
    assert decision.outcome == outcome
    assert decision.allowed is (outcome == "act")
    assert decision.reason


def test_reasons_name_who_and_why() -> None:
    assert gate(spec(), global_pause=KILL).reason == (
        "kill switch on since 2026-03-01T11:55:00+00:00 by os:alice"
    )
    assert "by an operator" in gate(spec(), operator_paused=True).reason
    assert "2 actions in the last 1h (max 2)" in gate(spec(**BUDGET), recent=TWO_RECENT).reason


@pytest.mark.parametrize(
    ("outcome_of", "audit"),
    [("act", "pending"), ("dry-run", "dry-run"), ("paused", "skipped"), ("protected", "skipped")],
)
def test_audit_outcome(outcome_of: str, audit: str) -> None:
    decision = GateDecision(outcome_of == "act", outcome_of, "why")  # type: ignore[arg-type]
    assert decision.audit_outcome == audit


@given(
    limit=st.integers(min_value=1, max_value=5),
    per=st.integers(min_value=1, max_value=120),
    gaps=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=200),
)
def test_never_more_than_max_actions_in_any_window(limit: int, per: int, gaps: list[int]) -> None:
    """Whatever the rhythm of requests: at most ``max`` acts in any window of ``per``, and
    the gate never refuses while the budget is not used up."""
    policy = spec(blastRadius={"max": limit, "per": per})
    window = timedelta(seconds=per)
    acts: list[datetime] = []
    now = NOW
    for gap in gaps:
        now += timedelta(seconds=gap)
        decision = decide(
            key="k",
            spec=policy,
            operator_paused=False,
            global_pause=None,
            tags={},
            recent=acts,
            now=now,
        )
        in_window = sum(1 for t in acts if t > now - window)
        assert decision.allowed is (in_window < limit)
        if decision.allowed:
            acts.append(now)
    for end in acts:
        assert sum(1 for t in acts if end - window < t <= end) <= limit


# ---- ActionGate over a PolicyWatcher fed by KV watch entries -------------------------


def entry(key: str, value: dict[str, Any] | None, revision: int) -> KeyValue.Entry:
    raw = None if value is None else json.dumps(value).encode()
    operation = KV_DEL if value is None else None
    return KeyValue.Entry(POLICY_BUCKET, key, raw, revision, 0, None, operation)


def stored(spec_fields: dict[str, Any], *, paused: bool = False) -> dict[str, Any]:
    document = {
        "apiVersion": "csfabric/v1",
        "kind": TEST_KIND,
        "metadata": {"name": "p"},
        "spec": spec_fields,
    }
    return {
        "kind": TEST_KIND,
        "name": "p",
        "version": 1,
        "document": document,
        "appliedBy": "os:test",
        "appliedAt": NOW.isoformat(),
        "paused": paused,
    }


async def test_gate_counts_acts_and_follows_changes() -> None:
    register_test_kinds()
    clock = SteppedClock(NOW)
    watcher = PolicyWatcher(cast(Bus, SimpleNamespace(clock=clock)))
    seen: list[str] = []
    watcher.on_change(lambda key, value: seen.append(key))
    action_gate = ActionGate(watcher, windows=MemoryBlastWindows())
    key = f"{TEST_KIND}.p"

    assert (await action_gate.check(TEST_KIND, "p")).outcome == "unknown-policy"
    watcher._update(entry(key, stored({"blastRadius": {"max": 2, "per": "1m"}}), 1))
    assert [(await action_gate.check(TEST_KIND, "p")).outcome for _ in range(3)] == [
        "act",
        "act",
        "blast-radius",
    ]
    await clock.advance(61)
    assert (await action_gate.check(TEST_KIND, "p")).outcome == "act"

    watcher._update(entry(GLOBAL_PAUSE_KEY, KILL.model_dump(mode="json"), 2))
    assert watcher.global_paused
    assert (await action_gate.check(TEST_KIND, "p")).outcome == "paused"
    watcher._update(entry(GLOBAL_PAUSE_KEY, {"not": "a pause"}, 3))
    assert (await action_gate.check(TEST_KIND, "p")).outcome == "paused", "unreadable = ON"
    watcher._update(entry(GLOBAL_PAUSE_KEY, LIFTED.model_dump(mode="json"), 4))
    assert (await action_gate.check(TEST_KIND, "p")).outcome == "act"

    watcher._update(entry(key, stored({}, paused=True), 5))
    assert (await action_gate.check(TEST_KIND, "p")).outcome == "paused"
    watcher._update(entry(key, stored({"action": 42}), 6))  # does not validate: ignored
    assert (await action_gate.check(TEST_KIND, "p")).outcome == "unknown-policy"
    watcher._update(entry(key, stored({"dryRun": True}), 7))
    assert (await action_gate.check(TEST_KIND, "p")).outcome == "dry-run"
    watcher._update(entry(key, None, 8))
    assert watcher.get(TEST_KIND, "p") is None
    assert watcher.revision == 8
    assert seen == [key, GLOBAL_PAUSE_KEY, GLOBAL_PAUSE_KEY, GLOBAL_PAUSE_KEY, key, key, key, key]
    assert watcher.changed.is_set()


async def test_unknown_kind_still_gated_by_its_common_fields() -> None:
    """A service that reads only some kinds can still gate on any policy's base fields."""
    watcher = PolicyWatcher(cast(Bus, SimpleNamespace(clock=SteppedClock(NOW))))
    value = stored({"dryRun": True, "someKindField": 3})
    value["kind"] = value["document"]["kind"] = "NotRegisteredHere"
    watcher._update(entry("NotRegisteredHere.p", value, 1))
    decision = await ActionGate(watcher).check("NotRegisteredHere", "p")
    assert decision.outcome == "dry-run"


# ---- the shared blast-radius window: dry runs never touch it, and it fails closed ------


class RecordingWindows(MemoryBlastWindows):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    async def admit(self, key: str, per: timedelta, now: datetime, judge: Any) -> Any:
        self.asked.append(key)
        return await super().admit(key, per, now, judge)


def watcher_with(spec_fields: dict[str, Any], bus: Any = None) -> PolicyWatcher:
    register_test_kinds()
    watcher = PolicyWatcher(cast(Bus, bus or SimpleNamespace(clock=SteppedClock(NOW))))
    watcher._update(entry(f"{TEST_KIND}.p", stored(spec_fields), 1))
    return watcher


@pytest.mark.parametrize(
    "spec_fields",
    [
        pytest.param({"dryRun": True, **BUDGET}, id="dry run"),
        pytest.param({"paused": True, **BUDGET}, id="paused"),
        pytest.param({}, id="no blast radius"),
    ],
)
async def test_only_an_action_under_a_blast_radius_uses_the_window(
    spec_fields: dict[str, Any],
) -> None:
    windows = RecordingWindows()
    action_gate = ActionGate(watcher_with(spec_fields), windows=windows)
    for _ in range(5):
        await action_gate.check(TEST_KIND, "p")
    assert windows.asked == []


async def test_without_nats_an_action_under_a_blast_radius_is_refused() -> None:
    """Fail closed: a budget the gate cannot see is a budget it must not spend."""
    offline = SimpleNamespace(clock=SteppedClock(NOW), nc=SimpleNamespace(is_connected=False))
    budgeted = ActionGate(watcher_with(BUDGET, offline))
    decision = await budgeted.check(TEST_KIND, "p")
    assert (decision.allowed, decision.outcome) == (False, "blast-radius")
    assert decision.reason.startswith("blast-radius state unavailable")
    assert decision.audit_outcome == "skipped"
    # Without a blast radius nothing remote is needed, so the gate still answers.
    assert (await ActionGate(watcher_with({}, offline)).check(TEST_KIND, "p")).allowed


async def test_a_window_longer_than_the_state_is_kept_is_refused() -> None:
    online = SimpleNamespace(clock=SteppedClock(NOW), nc=SimpleNamespace(is_connected=True))
    long_window = {"blastRadius": {"max": 2, "per": "400d"}}
    decision = await ActionGate(watcher_with(long_window, online)).check(TEST_KIND, "p")
    assert not decision.allowed
    assert "longer than the state is kept" in decision.reason
