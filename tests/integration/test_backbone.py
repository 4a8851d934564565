"""Streams, dedupe and the action ledger against a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import (
    ActionLedger,
    CloudEvent,
    Metrics,
    PermanentError,
    SteppedClock,
    StreamLimits,
    TransientError,
    action_key,
    make_event,
)
from csfabric.kernel.bus import STREAMS, Bus, Consumer, ConsumerOptions, Delivery, ensure_streams
from nats.js.api import StorageType

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def bus(nats_server: NatsServerProcess) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_server.url, service="test")
    yield bus
    await bus.close()


async def test_streams_are_created_once_with_file_storage_and_limits(bus: Bus) -> None:
    limits = StreamLimits(max_age_seconds=3600, max_bytes=1 << 20)
    first = await ensure_streams(bus.js, limits)
    assert set(first) == set(STREAMS)
    assert set(first.values()) == {"updated"}  # Bus.connect created them with defaults
    again = await ensure_streams(bus.js, limits)
    assert set(again.values()) == {"unchanged"}
    info = await bus.js.stream_info("CSFABRIC_AUDIT")
    assert info.config.storage == StorageType.FILE
    assert info.config.max_age == 3600
    assert info.config.max_bytes == 1 << 20


async def test_the_same_event_published_twice_is_stored_once(bus: Bus) -> None:
    event = make_event(type="environment.created", source="ci", id="env-1", subject="ci-42")
    first = await bus.publish_event(event)
    second = await bus.publish_event(event)
    assert not first.duplicate
    assert second.duplicate
    info = await bus.js.stream_info("CSFABRIC_EVENTS")
    assert info.state.messages == 1


async def test_ledger_calls_once_and_returns_the_recorded_outcome(bus: Bus) -> None:
    ledger = ActionLedger(await bus.key_value("csfabric_actions"))
    calls: list[str] = []

    async def call() -> dict[str, Any]:
        calls.append("x")
        return {"jobid": "j-1"}

    key = action_key("event-1", "snapshot")
    first = await ledger.run(key, call)
    second = await ledger.run(key, call)
    assert first.executed
    assert not second.executed
    assert second.source == "recorded"
    assert second.outcome == {"jobid": "j-1"}
    assert calls == ["x"]


async def test_an_intent_without_outcome_is_reconciled_not_repeated(bus: Bus) -> None:
    clock = SteppedClock()
    ledger = ActionLedger(await bus.key_value("csfabric_actions"), clock=clock, stale_after=60)
    key = action_key("event-2", "snapshot")
    created: list[str] = []

    async def crash_after_call() -> None:
        created.append(key)  # the resource exists, tagged with csfabric:key ...
        raise ConnectionError("... but the process died before recording")

    with pytest.raises(ConnectionError):
        await ledger.run(key, crash_after_call)

    async def must_not_run() -> None:
        raise AssertionError("the call was repeated")

    async def reconcile() -> dict[str, str] | None:
        return {"found": key} if key in created else None

    result = await ledger.run(key, must_not_run, reconcile=reconcile)
    assert result.source == "reconciled"
    assert result.outcome == {"found": key}
    assert (await ledger.run(key, must_not_run)).source == "recorded"


async def test_an_intent_in_flight_is_retried_later_then_claimed_when_stale(bus: Bus) -> None:
    clock = SteppedClock()
    ledger = ActionLedger(await bus.key_value("csfabric_actions"), clock=clock, stale_after=60)
    key = action_key("event-3", "snapshot")
    await ledger.kv.create(key, b'{"state":"intent","at":"%s"}' % clock.now().isoformat().encode())

    async def nothing_found() -> None:
        return None

    async def call() -> str:
        return "done"

    with pytest.raises(TransientError, match="in flight"):
        await ledger.run(key, call, reconcile=nothing_found)
    await clock.advance(timedelta(seconds=61))
    result = await ledger.run(key, call, reconcile=nothing_found)
    assert result.executed
    assert result.outcome == "done"


async def test_consumer_lag_is_reported_as_a_metric(nats_server: NatsServerProcess) -> None:
    metrics = Metrics("lagtest")
    bus = await Bus.connect(nats_server.url, service="lagtest", metrics=metrics)
    release = asyncio.Event()

    async def slow(event: CloudEvent, delivery: Delivery) -> None:
        await release.wait()

    for index in range(10):
        await bus.publish_event(make_event(type="thing.done", source="t", id=f"lag-{index}"))
    options = ConsumerOptions(batch=1, max_workers=1, lag_interval=0.05)
    consumer: Consumer[CloudEvent] = Consumer(bus, "csfabric.lifecycle.>", "lagger", slow, options)
    await consumer.start()
    try:
        lag_line = (
            'csfabric_consumer_lag{consumer="lagger",service="lagtest",stream="CSFABRIC_EVENTS"}'
        )

        def reported() -> float | None:
            for line in metrics.render().decode().splitlines():
                if line.startswith(lag_line):
                    return float(line.rsplit(" ", 1)[1])
            return None

        await _until(lambda: (reported() or 0) >= 8)
        release.set()
        await _until(lambda: reported() == 0)
    finally:
        release.set()
        await consumer.stop()
        await bus.close()


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_message_over_max_payload_is_a_permanent_error(bus: Bus) -> None:
    too_big = b"x" * bus.nc.max_payload
    with pytest.raises(PermanentError, match="NATS accepts at most"):
        await bus.publish("csfabric.lifecycle.big", too_big, msg_id="big-1")
    # The connection is still fine for the next message.
    ack = await bus.publish("csfabric.lifecycle.small", b"{}", msg_id="small-1")
    assert ack.seq >= 1
