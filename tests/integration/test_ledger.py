"""The action ledger's states against a real nats-server KV bucket.

intent → failed (proven: nothing ran) → the next attempt calls again at once;
intent → unknown → the next attempt reconciles, and never calls while the action may still
land; intent → refused → recorded and re-raised, never called again; a call past its
deadline is cancelled and counts as unknown; keys expire after the configured TTL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import (
    LEDGER_BUCKET as BUCKET,
)
from csfabric.kernel import (
    ActionLedger,
    ActionRefused,
    ConfigError,
    FabricSettings,
    OutcomeUnknownError,
    PermanentError,
    ScaledClock,
    SteppedClock,
    TransientError,
    action_key,
    open_ledger,
)
from csfabric.kernel.bus import Bus

from tests.integration._workload import eventually

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def bus(nats_server: NatsServerProcess) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server.url, service="ledger-test")
    yield bus
    await bus.close()


@pytest_asyncio.fixture
async def ledger(bus: Bus) -> ActionLedger:
    return ActionLedger(await bus.key_value(BUCKET), clock=SteppedClock(), stale_after=60)


class Action:
    """A scripted external call: raises the scripted errors in turn, then succeeds."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.done = False

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        self.done = True
        return {"snapshot": "s-1"}

    async def reconcile(self) -> dict[str, Any] | None:
        return {"snapshot": "s-1"} if self.done else None


async def state_of(ledger: ActionLedger, key: str) -> str | None:
    record = await ledger.state(key)
    return None if record is None else record["state"]


async def test_a_failure_that_proves_nothing_ran_is_retried_at_once(ledger: ActionLedger) -> None:
    key = action_key("evt-failed", "snapshot")
    action = Action(TransientError("createSnapshot: 530 Internal error"))
    with pytest.raises(TransientError, match="530"):
        await ledger.run(key, action, reconcile=action.reconcile)
    assert await state_of(ledger, key) == "failed"
    # No time passes: a proven failure leaves nothing in flight.
    result = await ledger.run(key, action, reconcile=action.reconcile)
    assert result.executed
    assert action.calls == 2
    assert await state_of(ledger, key) == "done"


async def test_an_unknown_outcome_is_reconciled_not_called_again(ledger: ActionLedger) -> None:
    key = action_key("evt-unknown", "snapshot")
    action = Action(OutcomeUnknownError("createSnapshot: timed out after 10s: outcome unknown"))
    with pytest.raises(OutcomeUnknownError):
        await ledger.run(key, action, reconcile=action.reconcile)
    assert await state_of(ledger, key) == "unknown"

    # Nothing found yet, and the call may still land: retry later, do not call.
    with pytest.raises(TransientError, match="unknown outcome"):
        await ledger.run(key, action, reconcile=action.reconcile)
    assert action.calls == 1

    action.done = True  # CloudStack finished the request after all: the tagged resource exists
    result = await ledger.run(key, action, reconcile=action.reconcile)
    assert result.source == "reconciled"
    assert result.outcome == {"snapshot": "s-1"}
    assert action.calls == 1
    assert (await ledger.run(key, action)).source == "recorded"


async def test_an_unknown_outcome_without_trace_is_called_again_once_stale(bus: Bus) -> None:
    clock = SteppedClock()
    ledger = ActionLedger(await bus.key_value(BUCKET), clock=clock, stale_after=60)
    key = action_key("evt-unknown-stale", "snapshot")
    action = Action(OutcomeUnknownError("connection lost: outcome unknown"))
    with pytest.raises(OutcomeUnknownError):
        await ledger.run(key, action, reconcile=action.reconcile)
    await clock.advance(59)
    with pytest.raises(TransientError):
        await ledger.run(key, action, reconcile=action.reconcile)
    assert action.calls == 1
    await clock.advance(2)
    result = await ledger.run(key, action, reconcile=action.reconcile)
    assert result.executed
    assert action.calls == 2


async def test_an_unknown_outcome_without_reconcile_is_never_resent(bus: Bus) -> None:
    clock = SteppedClock()
    ledger = ActionLedger(await bus.key_value(BUCKET), clock=clock, stale_after=60)
    key = action_key("evt-unknown-blind", "snapshot")
    action = Action(OutcomeUnknownError("timed out: outcome unknown"))
    with pytest.raises(OutcomeUnknownError):
        await ledger.run(key, action)
    await clock.advance(3600)
    with pytest.raises(PermanentError, match="no reconcile step"):
        await ledger.run(key, action)
    assert action.calls == 1


async def test_a_refusal_is_recorded_and_never_called_again(ledger: ActionLedger) -> None:
    key = action_key("evt-refused", "snapshot")
    action = Action(PermanentError("createSnapshot: 431 Unable to find volume"))
    with pytest.raises(PermanentError, match="431"):
        await ledger.run(key, action, reconcile=action.reconcile)
    record = await ledger.state(key)
    assert record is not None
    assert record["state"] == "refused"
    assert "431 Unable to find volume" in record["error"]
    with pytest.raises(ActionRefused, match="431"):
        await ledger.run(key, action, reconcile=action.reconcile)
    assert action.calls == 1


async def test_a_call_past_its_deadline_is_cancelled_and_reconciled(bus: Bus) -> None:
    clock = SteppedClock()
    ledger = ActionLedger(await bus.key_value(BUCKET), clock=clock, stale_after=60)
    assert ledger.call_timeout == 48  # 0.8 x stale_after
    key = action_key("evt-deadline", "snapshot")
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    task = asyncio.create_task(ledger.run(key, hangs))
    while clock.sleepers == 0:
        await asyncio.sleep(0.01)
    await clock.advance(47)
    assert not task.done()
    await clock.advance(2)
    with pytest.raises(OutcomeUnknownError, match="48s deadline"):
        await task
    assert cancelled.is_set()
    assert await state_of(ledger, key) == "unknown"


def test_the_call_deadline_must_be_below_stale_after() -> None:
    with pytest.raises(ConfigError, match="below stale_after"):
        ActionLedger(None, stale_after=60, call_timeout=60)  # type: ignore[arg-type]


async def test_own_intent_whose_answer_was_lost_is_not_taken_for_another_call(
    ledger: ActionLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The intent reaches the server but its answer does not (a restart, an election):
    # retry_broker sends the create again, which finds the key.  It is this call's own.
    kv = ledger.kv
    create = kv.create
    lost: list[str] = []

    async def create_then_lose_answer(key: str, value: bytes, **kwargs: Any) -> int:
        revision = await create(key, value, **kwargs)
        if not lost:
            lost.append(key)
            raise TimeoutError("answer lost")
        return revision

    monkeypatch.setattr(kv, "create", create_then_lose_answer)
    key = action_key("evt-lost-answer", "snapshot")
    action = Action()
    result = await ledger.run(key, action, reconcile=action.reconcile)
    assert lost == [key]
    assert result.executed
    assert action.calls == 1


async def test_keys_expire_after_the_configured_ttl(nats_server: NatsServerProcess) -> None:
    # One hour of fabric time at 1800x is two seconds of the server's wall time.
    clock = ScaledClock(datetime.now(UTC), 1800)
    bus = await Bus.connect(nats_server.url, service="ledger-ttl", clock=clock)
    try:
        plain = await bus.key_value(BUCKET)  # a bucket made earlier without a TTL
        assert not (await plain.status()).ttl
        settings = FabricSettings(action_key_ttl=timedelta(hours=1))
        ledger = await open_ledger(bus, settings, stale_after=600)
        assert (await ledger.kv.status()).ttl == pytest.approx(2.0)
        key = action_key("evt-ttl", "snapshot")
        await ledger.run(key, Action())
        assert await ledger.outcome(key) == {"snapshot": "s-1"}
        await eventually(
            lambda: _gone(ledger, key), within=15, what="the key outlived its TTL", interval=0.2
        )
    finally:
        await bus.close()


async def _gone(ledger: ActionLedger, key: str) -> bool:
    return await ledger.state(key) is None


async def test_the_ttl_must_outlast_stale_after(bus: Bus) -> None:
    settings = FabricSettings(action_key_ttl=timedelta(seconds=30))
    with pytest.raises(ConfigError, match="must exceed stale_after"):
        await open_ledger(bus, settings, stale_after=60)


def test_the_ttl_setting_reads_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    assert FabricSettings().action_key_ttl == timedelta(days=7)
    monkeypatch.setenv("CSFABRIC_ACTION_KEY_TTL", "36h")
    assert FabricSettings().action_key_ttl == timedelta(hours=36)
    monkeypatch.setenv("CSFABRIC_ACTION_KEY_TTL", "7200")
    assert FabricSettings().action_key_ttl == timedelta(hours=2)
