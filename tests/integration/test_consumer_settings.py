"""``CSFABRIC_MAX_DELIVER`` bounds the consumers a service starts through its context."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import CloudEvent, FabricSettings, TransientError, make_event
from csfabric.kernel.bus import Bus, Consumer, DeadLetter, Delivery
from csfabric.kernel.service import ServiceContext, run_service

from tests.integration._workload import DLQ_STREAM, eventually, stored, stream_count

pytestmark = pytest.mark.integration


async def test_a_service_consumer_is_bounded_by_csfabric_max_deliver(
    nats_server: NatsServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSFABRIC_MAX_DELIVER", "2")
    settings = FabricSettings(nats_url=nats_server.url, state_dir=tmp_path)
    attempts: list[int] = []
    started: list[Consumer[CloudEvent]] = []

    async def failing(event: CloudEvent, delivery: Delivery) -> None:
        attempts.append(delivery.deliveries)
        raise TransientError("cloudstack answered 530")

    async def setup(ctx: ServiceContext) -> None:
        started.append(await ctx.consume("csfabric.lifecycle.>", "bounded", failing))

    stop = asyncio.Event()
    service = asyncio.create_task(run_service("bounded", setup, settings=settings, stop=stop))
    bus = await Bus.connect(nats_server.url, service="test-publisher")
    try:
        await eventually(lambda: started, within=10, what="the service set up its consumer")
        assert started[0].options.max_deliver == 2
        await bus.publish_event(
            make_event(id="b-1", type="vm.started", source="/tests/bounded", subject="vm-b")
        )
        await eventually(
            lambda: stream_count(bus, DLQ_STREAM),
            within=15,
            what=lambda: f"a dead letter; attempts {attempts}",
        )
        [message] = await stored(bus, DLQ_STREAM)
    finally:
        stop.set()
        await asyncio.wait_for(service, 15)
        await bus.close()
    assert message.data is not None
    letter = DeadLetter.from_message(message.data, message.headers or {})
    assert letter.deliveries == 2
    assert attempts == [1, 2]
