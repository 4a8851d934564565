"""What watches the backbone — stream fill alerts and consumer lag — in memory and on
nats-server: both read ``stream_info`` / ``consumer_info``, so the double's byte and
pending counts must be the server's."""

from __future__ import annotations

import asyncio
import json

from csfabric.kernel import CloudEvent, Metrics, StreamLimits, make_event
from csfabric.kernel.bus import Bus, Consumer, ConsumerOptions, Delivery
from csfabric.kernel.bus._streamwatch import StreamWatch, alert_subject
from nats.js.errors import ServiceUnavailableError

from tests.backbone import Backbone
from tests.integration._workload import eventually

LIMIT = 32 * 1024
SUBJECT = "csfabric.audit.backpressure"


def record(i: int) -> bytes:
    return json.dumps({"n": i, "pad": "x" * 900}).encode()


async def put(bus: Bus, i: int) -> None:
    """Exactly these bytes and headers (``bus.publish`` adds a traceparent when another test
    set tracing up), so that the counts below are the same in every run."""
    await bus.js.publish(SUBJECT, record(i), headers={"Nats-Msg-Id": f"r-{i}"})


async def test_the_watcher_alerts_before_the_limit_once_per_window(backbone: Backbone) -> None:
    metrics = Metrics("backpressure")
    bus = await backbone.bus(
        "backpressure", metrics=metrics, stream_limits=StreamLimits(max_bytes=LIMIT)
    )
    watch = StreamWatch(bus, metrics, threshold=0.8)
    sent = 0
    ratios = await watch.check()
    while ratios["CSFABRIC_AUDIT"] < 0.8:
        await put(bus, sent)
        sent += 1
        ratios = await watch.check()
    assert ratios["CSFABRIC_AUDIT"] < 1.0
    assert sent == 26  # the same record sizes fill both backbones alike
    await watch.check()  # the same window: no second alert
    msg = await bus.js.get_last_msg("CSFABRIC_ALERTS", alert_subject("backpressure"))
    alert = json.loads(msg.data or b"{}")
    assert (alert["stream"], alert["max_bytes"]) == ("CSFABRIC_AUDIT", LIMIT)
    assert (await bus.js.stream_info("CSFABRIC_ALERTS")).state.messages == 1
    refused: ServiceUnavailableError | None = None
    for i in range(sent, 100):
        try:
            await put(bus, i)
        except ServiceUnavailableError as exc:
            refused = exc
            break
    assert refused is not None
    assert (i, refused.description) == (32, "maximum bytes exceeded")
    assert (await bus.js.stream_info("CSFABRIC_AUDIT")).state.first_seq == 1


async def test_consumer_lag_is_reported_as_a_metric(backbone: Backbone) -> None:
    metrics = Metrics("lagtest")
    bus = await backbone.bus("lagtest", metrics=metrics)
    release = asyncio.Event()

    async def slow(event: CloudEvent, delivery: Delivery) -> None:
        await release.wait()

    for index in range(10):
        await bus.publish_event(make_event(type="thing.done", source="t", id=f"lag-{index}"))
    options = ConsumerOptions(batch=1, max_workers=1, lag_interval=0.05)
    consumer: Consumer[CloudEvent] = Consumer(bus, "csfabric.lifecycle.>", "lagger", slow, options)
    await consumer.start()
    line = 'csfabric_consumer_lag{consumer="lagger",service="lagtest",stream="CSFABRIC_EVENTS"}'

    def reported() -> float | None:
        for sample in metrics.render().decode().splitlines():
            if sample.startswith(line):
                return float(sample.rsplit(" ", 1)[1])
        return None

    try:
        await eventually(lambda: (reported() or 0) >= 8, within=10, what="lag of 8 or more")
        release.set()
        await eventually(lambda: reported() == 0, within=10, what="lag back to 0")
    finally:
        release.set()
        await consumer.stop()
