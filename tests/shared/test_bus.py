"""Streams, publishing and raw pull consumers: the JetStream behaviour the kernel builds on.

Each case runs in memory and on nats-server (see ``conftest.py``); the raw cases pin down
what the double must do exactly as the server does (dedupe, limits, redelivery counts).
"""

from __future__ import annotations

import json

import pytest
from csfabric.kernel import PermanentError, StreamLimits, make_event
from csfabric.kernel.bus import STREAMS, Bus, StreamFullError, ensure_streams
from nats.errors import MsgAlreadyAckdError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import (
    BadRequestError,
    NoStreamResponseError,
    NotFoundError,
    ServiceUnavailableError,
)

from tests.backbone import Backbone
from tests.integration._workload import eventually, stored, stream_count

EVENTS = "CSFABRIC_EVENTS"


async def test_streams_are_created_once_then_left_unchanged(bus: Bus) -> None:
    limits = StreamLimits(max_age_seconds=3600, max_bytes=1 << 20)
    first = await ensure_streams(bus.js, limits)
    assert set(first) == set(STREAMS)
    assert set(first.values()) == {"updated"}  # the bus created them with the defaults
    assert set((await ensure_streams(bus.js, limits)).values()) == {"unchanged"}
    info = await bus.js.stream_info("CSFABRIC_AUDIT")
    assert info.config.storage == StorageType.FILE
    assert (info.config.max_age, info.config.max_bytes) == (3600, 1 << 20)
    assert info.config.discard == DiscardPolicy.NEW
    assert (await bus.js.stream_info("CSFABRIC_ALERTS")).config.discard == DiscardPolicy.OLD


async def test_a_missing_stream_is_not_found(bus: Bus) -> None:
    with pytest.raises(NotFoundError):
        await bus.js.stream_info("NO_SUCH_STREAM")


async def test_overlapping_subjects_are_refused(bus: Bus) -> None:
    with pytest.raises(BadRequestError):
        await bus.js.add_stream(StreamConfig(name="OVERLAP", subjects=["csfabric.audit.x"]))


async def test_the_same_event_published_twice_is_stored_once(bus: Bus) -> None:
    event = make_event(type="environment.created", source="ci", id="env-1", subject="ci-42")
    first = await bus.publish_event(event)
    second = await bus.publish_event(event)
    assert not first.duplicate
    assert second.duplicate
    assert second.seq == first.seq
    assert await stream_count(bus, EVENTS) == 1
    [message] = await stored(bus, EVENTS)
    assert message.subject == "csfabric.lifecycle.environment.created"
    assert (message.headers or {})["Nats-Msg-Id"] == "env-1"


async def test_a_message_over_max_payload_is_a_permanent_error(bus: Bus) -> None:
    with pytest.raises(PermanentError, match="NATS accepts at most"):
        await bus.publish("csfabric.lifecycle.big", b"x" * bus.nc.max_payload, msg_id="big-1")
    ack = await bus.publish("csfabric.lifecycle.small", b"{}", msg_id="small-1")
    assert ack.seq == 1


async def test_a_full_stream_refuses_at_once_and_deletes_nothing(backbone: Backbone) -> None:
    bus = await backbone.bus(stream_limits=StreamLimits(max_bytes=4096))
    refusal: StreamFullError | None = None
    sent = 0
    for sent in range(100):
        try:
            await bus.publish("csfabric.audit.t", b"x" * 300, msg_id=f"a-{sent}")
        except StreamFullError as exc:
            refusal = exc
            break
    assert refusal is not None
    assert "maximum bytes exceeded" in str(refusal)
    info = await bus.js.stream_info("CSFABRIC_AUDIT")
    assert info.state.messages == sent  # all before the refusal are kept
    assert info.state.first_seq == 1
    assert 4096 - 400 < info.state.bytes <= 4096


async def test_a_full_stream_counts_messages_too(bus: Bus) -> None:
    config = StreamConfig(name="SMALL", subjects=["small.>"], max_msgs=2, discard=DiscardPolicy.NEW)
    await bus.js.add_stream(config)
    await bus.js.publish("small.a", b"1")
    await bus.js.publish("small.b", b"2")
    with pytest.raises(Exception, match="maximum messages exceeded"):
        await bus.js.publish("small.c", b"3")
    old = StreamConfig(name="ROLLING", subjects=["rolling.>"], max_msgs=2)
    await bus.js.add_stream(old)
    for n in range(3):
        await bus.js.publish("rolling.x", str(n).encode())
    info = await bus.js.stream_info("ROLLING")
    assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (2, 2, 3)


async def _raw_consumer(bus: Bus, name: str, **config: object) -> None:
    await bus.js.add_stream(StreamConfig(name="RAW", subjects=["raw.>"]))
    await bus.js.add_consumer(
        "RAW",
        ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT, **config),  # type: ignore[arg-type]
    )


async def test_an_unacked_message_comes_back_after_ack_wait_counted(bus: Bus) -> None:
    await _raw_consumer(bus, "raw", ack_wait=1.0)
    await bus.js.publish("raw.a", b"one", headers={"k": "v"})
    sub = await bus.js.pull_subscribe_bind(durable="raw", stream="RAW")
    [first] = await sub.fetch(5, timeout=2)
    assert (first.data, first.subject, (first.headers or {}).get("k")) == (b"one", "raw.a", "v")
    assert first.metadata.num_delivered == 1
    assert first.metadata.sequence.stream == 1
    with pytest.raises(NatsTimeoutError):
        await sub.fetch(1, timeout=0.3)  # in hand, not yet due again
    [again] = await sub.fetch(1, timeout=5)  # after ack_wait
    assert again.metadata.num_delivered == 2
    assert again.metadata.sequence.stream == 1
    held = await bus.js.consumer_info("RAW", "raw")
    assert (held.num_redelivered, held.num_ack_pending) == (1, 1)
    assert held.delivered is not None
    assert (held.delivered.consumer_seq, held.delivered.stream_seq) == (2, 1)
    await again.ack()
    with pytest.raises(MsgAlreadyAckdError):
        await again.ack()
    info = await bus.js.consumer_info("RAW", "raw")
    await eventually(lambda: _settled(bus, "raw"), within=5, what=lambda: f"acked: {info}")
    await sub.unsubscribe()


async def _settled(bus: Bus, name: str) -> bool:
    info = await bus.js.consumer_info("RAW", name)
    return not info.num_pending and not info.num_ack_pending


async def test_nak_with_delay_term_and_in_progress(bus: Bus) -> None:
    await _raw_consumer(bus, "verbs", ack_wait=1.5)
    for subject in ("raw.nak", "raw.term", "raw.wpi"):
        await bus.js.publish(subject, subject.encode())
    sub = await bus.js.pull_subscribe_bind(durable="verbs", stream="RAW")
    got = await sub.fetch(3, timeout=2)
    assert [m.subject for m in got] == ["raw.nak", "raw.term", "raw.wpi"]
    assert (await bus.js.consumer_info("RAW", "verbs")).num_ack_pending == 3
    nak, term, wpi = got
    await nak.nak(delay=0.5)
    await term.term()
    await wpi.in_progress()
    [back] = await sub.fetch(1, timeout=3)  # the nak'd one, after its delay
    assert (back.subject, back.metadata.num_delivered) == ("raw.nak", 2)
    await back.ack()
    await wpi.ack()  # touched in time: still ours to ack
    await eventually(lambda: _settled(bus, "verbs"), within=5, what="all settled")
    with pytest.raises(NatsTimeoutError):
        await sub.fetch(1, timeout=0.5)  # the termed one never returns
    await sub.unsubscribe()


async def test_max_deliver_stops_redelivery(bus: Bus) -> None:
    await _raw_consumer(bus, "bounded", max_deliver=2)
    await bus.js.publish("raw.x", b"x")
    sub = await bus.js.pull_subscribe_bind(durable="bounded", stream="RAW")
    counts = []
    for _ in range(2):
        [msg] = await sub.fetch(1, timeout=2)
        counts.append(msg.metadata.num_delivered)
        await msg.nak()
    assert counts == [1, 2]
    with pytest.raises(NatsTimeoutError):
        await sub.fetch(1, timeout=0.5)
    await sub.unsubscribe()


async def test_a_fetch_returns_what_is_there_and_pending_counts_the_rest(bus: Bus) -> None:
    await _raw_consumer(bus, "batch", filter_subject="raw.keep.>")
    for n in range(5):
        await bus.js.publish(f"raw.keep.{n}", json.dumps(n).encode())
        await bus.js.publish(f"raw.skip.{n}", b"-")
    sub = await bus.js.pull_subscribe_bind(durable="batch", stream="RAW")
    first = await sub.fetch(3, timeout=2)
    assert [json.loads(m.data) for m in first] == [0, 1, 2]
    assert (await bus.js.consumer_info("RAW", "batch")).num_pending == 2
    rest = await sub.fetch(10, timeout=2)
    assert [json.loads(m.data) for m in rest] == [3, 4]
    assert [m.metadata.sequence.consumer for m in first + rest] == [1, 2, 3, 4, 5]
    assert [m.metadata.num_pending for m in first] == [4, 3, 2]
    info = await bus.js.consumer_info("RAW", "batch")
    assert info.delivered is not None
    assert (info.delivered.stream_seq, info.num_pending, info.num_ack_pending) == (9, 0, 5)
    for msg in first + rest:
        await msg.ack()
    await eventually(lambda: _settled(bus, "batch"), within=5, what="all acked")
    await sub.unsubscribe()


async def test_get_msg_by_sequence_last_and_next_by_subject(bus: Bus) -> None:
    for n, subject in enumerate(["csfabric.audit.a", "csfabric.audit.b", "csfabric.audit.a"]):
        await bus.publish(subject, str(n).encode(), msg_id=f"g-{n}")
    last = await bus.js.get_last_msg("CSFABRIC_AUDIT", "csfabric.audit.a")
    assert (last.seq, last.data) == (3, b"2")
    nxt = await bus.js.get_msg("CSFABRIC_AUDIT", seq=2, subject="csfabric.audit.a", next=True)
    assert nxt.seq == 3
    assert (await bus.js.get_msg("CSFABRIC_AUDIT", 2)).subject == "csfabric.audit.b"
    with pytest.raises(NotFoundError):
        await bus.js.get_msg("CSFABRIC_AUDIT", seq=4, subject="csfabric.audit.a", next=True)


async def test_a_subject_no_stream_stores_gets_no_response(bus: Bus) -> None:
    with pytest.raises(NoStreamResponseError):
        await bus.js.publish("nowhere.at.all", b"x")


async def test_an_empty_stream_and_what_the_server_fills_in(bus: Bus) -> None:
    await bus.js.add_stream(StreamConfig(name="FRESH", subjects=["fresh.>"]))
    info = await bus.js.stream_info("FRESH")
    assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (0, 0, 0)
    assert (info.config.max_age, info.config.max_msgs, info.config.duplicate_window) == (
        0.0,
        -1,
        120.0,
    )
    kv = await bus.key_value("filled_in")
    await kv.put("k", b"1")
    await kv.put("k", b"2")
    entry = await bus.js.get_msg("KV_filled_in", subject="$KV.filled_in.k")
    assert (entry.seq, entry.data, entry.headers) == (2, b"2", None)
    revision = await kv.update("k", b"3", last=2)
    entry = await bus.js.get_msg("KV_filled_in", seq=revision)
    assert entry.headers == {"Nats-Expected-Last-Subject-Sequence": "2"}  # kept as sent
    status = await kv.status()
    assert (status.ttl, status.stream_info.config.allow_direct) == (0.0, False)


async def test_a_fetch_on_a_consumer_that_is_gone_times_out(bus: Bus) -> None:
    """Nobody answers a pull request for a missing consumer: nats-py raises the 503 "no
    responders" status as ServiceUnavailableError, never NotFoundError (so a kernel
    consumer's recreate-on-NotFound path is not what notices a deleted durable)."""
    await _raw_consumer(bus, "doomed")
    sub = await bus.js.pull_subscribe_bind(durable="doomed", stream="RAW")
    await bus.js.delete_consumer("RAW", "doomed")
    with pytest.raises(ServiceUnavailableError):
        await sub.fetch(8, timeout=0.5)
    with pytest.raises(NotFoundError):
        await bus.js.consumer_info("RAW", "doomed")
