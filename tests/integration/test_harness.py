"""The real-server fixtures themselves work: servers start, keep data, form clusters."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika
import nats
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from nats.js.api import StorageType, StreamConfig

from tests.servers import NatsServerProcess

pytestmark = pytest.mark.integration


async def test_nats_server_accepts_client_and_jetstream(nats_server: NatsServerProcess) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="T", subjects=["t.>"])
        ack = await js.publish("t.one", b"hello")
        assert (ack.stream, ack.seq) == ("T", 1)
    finally:
        await nc.close()


async def test_nats_kill_and_restart_keep_file_stream(nats_server: NatsServerProcess) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        keep = StreamConfig(name="KEEP", subjects=["keep.>"], storage=StorageType.FILE)
        await js.add_stream(keep)
        for i in range(10):
            await js.publish("keep.x", str(i).encode())
    finally:
        await nc.close()

    nats_server.kill()
    assert not nats_server.running
    await nats_server.restart()

    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().stream_info("KEEP")
        assert info.state.messages == 10
    finally:
        await nc.close()


@pytest.mark.slow
async def test_nats_cluster_places_r3_stream(nats_cluster: list[NatsServerProcess]) -> None:
    assert len(nats_cluster) == 3
    nc = await nats.connect([node.url for node in nats_cluster])
    try:
        js = nc.jetstream()
        await js.add_stream(name="R3", subjects=["r3.>"], num_replicas=3)
        deadline = time.monotonic() + 10
        info = await js.stream_info("R3")
        while info.cluster is None or info.cluster.leader is None:
            assert time.monotonic() < deadline, "R3 stream got no leader"
            await asyncio.sleep(0.1)
            info = await js.stream_info("R3")
        assert info.cluster.leader in {"n1", "n2", "n3"}
        assert info.config.num_replicas == 3
    finally:
        await nc.close()


async def test_kafka_broker_round_trip(kafka_broker: str) -> None:
    topic = f"harness-{uuid.uuid4().hex}"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"ping", key=b"k")
    finally:
        await producer.stop()

    # No group: a plain assigned reader is enough here and avoids the group-join delay.
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_broker, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k", b"ping")


async def test_rabbitmq_connects(rabbitmq_url: str) -> None:
    connection = await aio_pika.connect_robust(rabbitmq_url, timeout=10)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await channel.default_exchange.publish(aio_pika.Message(b"hi"), routing_key=queue.name)
        message = await queue.get(timeout=5)
        assert message is not None
        await message.ack()
        assert message.body == b"hi"
