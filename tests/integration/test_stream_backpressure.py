"""Full streams refuse instead of deleting (item 7), against a real nats-server.

Tiny ``StreamLimits`` make "full" a matter of a few dozen messages.  What must hold: the
publisher gets :class:`StreamFullError` at once (back-pressure, not a ~15 s retry), nothing
already stored is deleted, a stream made by an older release is switched to
``DiscardPolicy.NEW``, and the watcher alerts well before the limit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from csfabric.kernel import Metrics, StreamLimits
from csfabric.kernel.bus import Bus, StreamFullError
from csfabric.kernel.bus._streams import STREAMS, ensure_streams, stream_config
from csfabric.kernel.bus._streamwatch import StreamWatch, alert_subject
from nats.js.api import DiscardPolicy

from tests.servers import NatsServerProcess

pytestmark = pytest.mark.integration

LIMIT = 32 * 1024
SUBJECT = "csfabric.audit.backpressure"


@pytest_asyncio.fixture
async def bus(nats_server: NatsServerProcess) -> AsyncIterator[Bus]:
    metrics = Metrics("backpressure")
    bus = await Bus.connect(
        nats_server.url,
        service="backpressure",
        metrics=metrics,
        stream_limits=StreamLimits(max_bytes=LIMIT),
    )
    try:
        yield bus
    finally:
        await bus.close()


def record(i: int) -> bytes:
    return json.dumps({"n": i, "pad": "x" * 900}).encode()


async def fill(bus: Bus, subject: str = SUBJECT) -> int:
    """Publish distinct records until the stream refuses one; how many were stored."""
    for i in range(10 * LIMIT // 900):
        try:
            await bus.publish(subject, record(i), msg_id=f"r-{i}")
        except StreamFullError:
            return i
    raise AssertionError(f"{10 * LIMIT // 900} records of ~1 KB fit a {LIMIT} byte stream")


async def test_a_full_stream_refuses_at_once_and_deletes_nothing(bus: Bus) -> None:
    loop = asyncio.get_running_loop()
    stored = await fill(bus)
    assert stored > 10
    began = loop.time()
    with pytest.raises(StreamFullError, match="maximum bytes exceeded"):
        await bus.publish(SUBJECT, record(10_000), msg_id="one-more")
    # Back-pressure, not a broker hiccup: not retried for the ~15 s budget of retry_broker.
    assert loop.time() - began < 2.0
    info = await bus.js.stream_info("CSFABRIC_AUDIT")
    assert info.config.discard == DiscardPolicy.NEW
    assert info.state.first_seq == 1  # the oldest record is still there
    assert info.state.messages == stored
    first = await bus.js.get_msg("CSFABRIC_AUDIT", 1)
    assert json.loads(first.data or b"{}")["n"] == 0


async def test_ensure_streams_switches_old_streams_to_refusing(bus: Bus) -> None:
    limits = StreamLimits(max_bytes=LIMIT)
    old = stream_config("CSFABRIC_EVENTS", STREAMS["CSFABRIC_EVENTS"], limits)
    old.discard = DiscardPolicy.OLD  # what an older release created
    await bus.js.update_stream(old)
    result = await ensure_streams(bus.js, limits)
    assert result["CSFABRIC_EVENTS"] == "updated"
    assert result["CSFABRIC_AUDIT"] == "unchanged"
    for name in ("CSFABRIC_EVENTS", "CSFABRIC_AUDIT", "CSFABRIC_DLQ", "CSFABRIC_CONTROL"):
        assert (await bus.js.stream_info(name)).config.discard == DiscardPolicy.NEW, name
    for name in ("CSFABRIC_POLICIES", "CSFABRIC_REPLAY"):
        assert (await bus.js.stream_info(name)).config.discard == DiscardPolicy.NEW, name
    # Alerts may drop their oldest: the stream-full alert must always find room.
    assert (await bus.js.stream_info("CSFABRIC_ALERTS")).config.discard == DiscardPolicy.OLD


async def test_the_watcher_alerts_before_the_limit_once_per_window(bus: Bus) -> None:
    assert bus.metrics is not None
    watch = StreamWatch(bus, bus.metrics, threshold=0.8)
    sent = 0
    ratios = await watch.check()
    while ratios["CSFABRIC_AUDIT"] < 0.8:
        await bus.publish(SUBJECT, record(sent), msg_id=f"r-{sent}")
        sent += 1
        ratios = await watch.check()
    assert ratios["CSFABRIC_AUDIT"] < 1.0  # still room: the alert comes before refusals
    await watch.check()  # the same window: no second alert
    msg = await bus.js.get_last_msg("CSFABRIC_ALERTS", alert_subject("backpressure"))
    alert = json.loads(msg.data or b"{}")
    assert alert["stream"] == "CSFABRIC_AUDIT"
    assert 0.8 <= alert["ratio"] < 1.0
    assert alert["max_bytes"] == LIMIT
    info = await bus.js.stream_info("CSFABRIC_ALERTS", subjects_filter="csfabric.alert.>")
    assert info.state.messages == 1
    gauge = bus.metrics.registry.get_sample_value(
        "csfabric_stream_fill_ratio", {"service": "backpressure", "stream": "CSFABRIC_AUDIT"}
    )
    assert gauge == ratios["CSFABRIC_AUDIT"]
    # ...and the stream does fill up afterwards, refusing, never deleting.
    await fill(bus)
    assert (await bus.js.stream_info("CSFABRIC_AUDIT")).state.first_seq == 1
