"""Events/s RabbitMQ → JetStream and Kafka → JetStream: through ingest, next to a raw loop.

    .venv/bin/python bench/ingest.py [--events 20000] [--paths raw-amqp,ingest-amqp,...]
                                     [--prefetch 256] [--out bench/results/ingest.json]

Per path, N CloudStack ``VM.CREATE`` ActionEvents (native bytes, each about a different VM)
are put on the broker first — RabbitMQ: a unique durable topic exchange and queue; Kafka:
a unique topic on a private tansu — and then drained into JetStream (own nats-server).
The clock starts when the first message reaches the consuming code (connecting and the
Kafka group join are not measured) and stops when N events are JetStream-acknowledged.
Afterwards the broker must hold no unacked message / the group must have committed N.
See bench/README.md for what each path does.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aio_pika
import nats
from _common import (
    EVENTS,
    BenchError,
    CountingExporter,
    PathResult,
    Stopwatch,
    free_port,
    machine_info,
    print_table,
    start_server,
    stream_messages,
    wait_until,
    write_json,
)
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from csfabric.cloudstack._native import NativeEvent, action_event
from csfabric.devstack import TansuServer, find_tansu
from csfabric.kernel._tracing import setup_tracing
from csfabric.kernel.bus import MSG_ID, Bus
from opentelemetry.sdk.trace.export import BatchSpanProcessor

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "ingest.json"
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"
ZONE = timezone(timedelta(hours=2))  # a non-UTC management server: ingest must normalise
Stop = Callable[[], Awaitable[None]]
Incoming = aio_pika.abc.AbstractIncomingMessage


@dataclass
class Env:
    nats_url: str
    kafka: str
    amqp_url: str
    n: int
    prefetch: int
    kafka_batch: int
    timeout: float
    server_pid: int | None
    js: Any  # the setup connection's JetStreamContext
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass
class Progress:
    """Counts events JetStream acknowledged; the first delivery starts the stopwatch."""

    watch: Stopwatch
    done: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    first: float | None = None  # perf_counter of the first delivery

    def begin(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()
            self.watch.start()


def native_events(tag: str, n: int) -> list[NativeEvent]:
    """N distinct VM.CREATE/Completed events, as CloudStack 4.20 publishes them."""
    base = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    user, account = str(uuid.uuid4()), str(uuid.uuid4())
    text = "Successfully completed deploying Vm. Vm Id: "
    return [
        action_event(
            "VM.CREATE",
            "Completed",
            f"{text}{tag}-{i}",
            user=user,
            account=account,
            entity="VirtualMachine",
            entity_uuid=str(uuid.uuid4()),
            when=base + timedelta(seconds=i),
            tz=ZONE,
        )
        for i in range(n)
    ]


async def preload(env: Env, key: str, events: list[NativeEvent]) -> None:
    """Put the N events on the path's broker before the clock can start."""
    if key.endswith("amqp"):
        conn = await aio_pika.connect(env.amqp_url)
        async with conn:
            channel = await conn.channel()
            exchange = await channel.declare_exchange(
                f"bench-{env.run}-{key}", aio_pika.ExchangeType.TOPIC, durable=True
            )
            # Declared like ingest's feed declares it (durable, no arguments), so its own
            # declaration later is a no-op and it finds the backlog waiting.
            queue = await channel.declare_queue(f"bench-{env.run}-{key}", durable=True)
            await queue.bind(exchange, routing_key="#")
            persistent = aio_pika.DeliveryMode.PERSISTENT
            for start in range(0, len(events), 1000):  # publisher confirms, 1,000 in flight
                chunk = events[start : start + 1000]
                messages = [
                    aio_pika.Message(
                        e.body_json(), content_type="text/plain", delivery_mode=persistent
                    )
                    for e in chunk
                ]
                await asyncio.gather(
                    *(
                        exchange.publish(m, e.routing_key())
                        for m, e in zip(messages, chunk, strict=True)
                    )
                )
        return
    producer = AIOKafkaProducer(bootstrap_servers=env.kafka, acks="all", linger_ms=5)
    await producer.start()
    try:
        for e in events:
            await producer.send(f"bench-{env.run}-{key}", value=e.body_json(), key=e.kafka_key)
        await producer.flush()
    finally:
        await producer.stop()


def raw_id(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()  # dedupe key, as cheap as plain code gets


async def raw_amqp(env: Env, key: str, progress: Progress) -> Stop:
    """aio-pika consume (prefetch) → js.publish_async per message → gather → one ack."""
    nc = await nats.connect(env.nats_url)
    js = nc.jetstream()
    conn = await aio_pika.connect(env.amqp_url)
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=env.prefetch)
    queue = await channel.declare_queue(f"bench-{env.run}-{key}", durable=True)
    subject = f"csfabric.cloudstack.bench.{key}"
    pending: list[Incoming] = []
    arrived = asyncio.Event()

    async def on_message(message: Incoming) -> None:
        progress.begin()
        pending.append(message)
        arrived.set()

    async def settle(batch: list[Incoming], previous: asyncio.Task[None] | None) -> None:
        futures = [
            await js.publish_async(subject, m.body, headers={MSG_ID: raw_id(m.body)}) for m in batch
        ]
        acks = await asyncio.gather(*futures)
        if previous is not None:
            await previous  # acks in delivery order, so one multiple-ack covers the batch
        await batch[-1].ack(multiple=True)
        progress.done += len(batch)
        progress.outcomes.update("duplicate" if a.duplicate else "stored" for a in acks)

    async def flusher() -> None:
        last: asyncio.Task[None] | None = None
        while True:  # a batch is whatever arrived while the previous one was handed off
            await arrived.wait()
            arrived.clear()
            batch = pending[:]
            pending.clear()
            last = asyncio.create_task(settle(batch, last))

    runner = asyncio.create_task(flusher())
    tag = await queue.consume(on_message)

    async def stop() -> None:
        await queue.cancel(tag)
        runner.cancel()
        await conn.close()
        await nc.close()

    return stop


async def raw_kafka(env: Env, key: str, progress: Progress) -> Stop:
    """aiokafka getmany → js.publish_async per record → gather → commit, one batch at a time."""
    nc = await nats.connect(env.nats_url)
    js = nc.jetstream()
    consumer = AIOKafkaConsumer(
        f"bench-{env.run}-{key}",
        bootstrap_servers=env.kafka,
        group_id=f"bench-{env.run}-{key}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    subject = f"csfabric.cloudstack.bench.{key}"

    async def loop() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=env.kafka_batch)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                continue
            progress.begin()
            futures = [
                await js.publish_async(subject, r.value, headers={MSG_ID: raw_id(r.value)})
                for r in records
            ]
            acks = await asyncio.gather(*futures)
            await consumer.commit()
            progress.done += len(records)
            progress.outcomes.update("duplicate" if a.duplicate else "stored" for a in acks)

    runner = asyncio.create_task(loop())

    async def stop() -> None:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await consumer.stop()
        await nc.close()

    return stop


async def ingest_feed(env: Env, key: str, progress: Progress) -> Stop:
    """csfabric ingest: Pipeline (parse_native → publish_event) fed by start_amqp/start_kafka."""
    from csfabric.ingest.feeds import amqp  # late: the raw paths run without ingest
    from csfabric.ingest.feeds import kafka as kafka_in
    from csfabric.ingest.handlers import Pipeline
    from csfabric.ingest.settings import IngestSettings
    from csfabric.kernel import Auditor, FabricSettings, RealClock
    from csfabric.kernel._ops import Metrics, OpsServer
    from csfabric.kernel.policy import ActionGate, PolicyWatcher
    from csfabric.kernel.service import ServiceContext

    class CountingPipeline(Pipeline):
        async def ingest(self, msg: Any) -> Any:
            progress.begin()
            outcome = await super().ingest(msg)
            progress.done += 1
            progress.outcomes[outcome] += 1
            return outcome

    name = f"bench-{env.run}-{key}"
    settings = IngestSettings(
        cloud_name="bench-cloud",
        amqp_url=env.amqp_url if key.endswith("amqp") else None,
        amqp_exchange=name,
        amqp_queue=name,
        kafka_bootstrap=env.kafka if key.endswith("kafka") else None,
        kafka_topic=name,
        kafka_group=name,
        kafka_offset_reset="earliest",  # the events are on the topic before the group starts
        poll_interval=0,
    )
    bus = await Bus.connect(env.nats_url, service="ingest", create_streams=False)
    metrics, policies = Metrics("ingest"), PolicyWatcher(bus)  # no policy is consulted
    ctx = ServiceContext(
        "ingest", FabricSettings(nats_url=env.nats_url), RealClock(), bus, metrics,
        Auditor(bus), OpsServer(metrics), policies, ActionGate(policies),
    )  # fmt: skip
    pipeline = CountingPipeline(ctx, settings)
    if key.endswith("amqp"):
        feed: Any = await amqp.start_amqp(pipeline, settings, prefetch=env.prefetch)
    else:
        feed = await kafka_in.start_kafka(pipeline, settings)

    async def stop() -> None:
        await feed.stop()
        await bus.close()

    return stop


PATHS: dict[str, tuple[str, Callable[[Env, str, Progress], Awaitable[Stop]]]] = {
    "raw-amqp": ("aio-pika consume → publish_async batch → ack", raw_amqp),
    "ingest-amqp": ("ingest start_amqp → Pipeline.ingest → ack", ingest_feed),
    "raw-kafka": ("aiokafka getmany → publish_async → commit", raw_kafka),
    "ingest-kafka": ("ingest start_kafka → Pipeline.ingest → commit", ingest_feed),
}


async def broker_left(env: Env, key: str) -> int:
    """Messages the broker still holds for the path (unacked ones were requeued at stop).

    Also deletes the path's queue and exchange; tansu's topics vanish with the process.
    """
    name = f"bench-{env.run}-{key}"
    if key.endswith("amqp"):
        async with await aio_pika.connect(env.amqp_url) as conn:
            channel = await conn.channel()
            queue = await channel.declare_queue(name, passive=True)
            await channel.queue_delete(name)
            await channel.exchange_delete(name)
            return int(queue.declaration_result.message_count or 0)
    # Not joining the group: committed() only fetches the group's offsets.
    probe = AIOKafkaConsumer(bootstrap_servers=env.kafka, group_id=name, enable_auto_commit=False)
    await probe.start()
    try:
        parts = probe.partitions_for_topic(name) or set()
        committed = [await probe.committed(TopicPartition(name, p)) for p in parts]
    finally:
        await probe.stop()
    return env.n - sum(c or 0 for c in committed)


async def run_path(env: Env, key: str) -> PathResult:
    label, start = PATHS[key]
    await preload(env, key, native_events(f"{env.run}-{key}", env.n))
    gc.collect()
    before = await stream_messages(env.js, EVENTS)
    progress = Progress(Stopwatch(env.server_pid))
    opened = time.perf_counter()
    settings: dict[str, Any] = {"prefetch": env.prefetch}
    if key.endswith("kafka"):
        settings = {"batch": env.kafka_batch}
    seconds, error = 0.0, None
    try:
        stop = await start(env, key, progress)
        try:
            await wait_until(
                lambda: progress.done >= env.n, env.timeout, key, lambda: progress.done
            )
            seconds = progress.watch.stop()
        finally:
            await stop()
    except BenchError as exc:
        error = str(exc)
    left = await broker_left(env, key)
    stored = await stream_messages(env.js, EVENTS) - before
    checks = {"handled": progress.done, "stored": stored, "broker_left": left}
    checks |= {f"outcome_{k}": v for k, v in progress.outcomes.items()}
    settings["startup_s"] = round((progress.first or opened) - opened, 2)  # connect, join
    result = PathResult(key, label, env.n, seconds, settings, checks, error=error)
    result.client_cpu, result.server_cpu = progress.watch.client_cpu, progress.watch.server_cpu
    if not error and (stored != env.n or left or progress.outcomes.get("stored") != env.n):
        result.error = f"expected {env.n} stored once, none left: {checks}"
    return result


async def main(args: argparse.Namespace) -> int:
    logging.getLogger("csfabric.kernel.bus._connection").setLevel(
        logging.ERROR
    )  # drain-on-close noise
    keys = list(dict.fromkeys(k.strip() for k in args.paths.split(",") if k.strip()))
    if unknown := [k for k in keys if k not in PATHS]:
        raise SystemExit(f"unknown path(s) {unknown}; choose from {list(PATHS)}")
    if (task := asyncio.current_task()) is not None:  # SIGTERM cleans up like Ctrl-C
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    load_at_start = round(os.getloadavg()[0], 2)
    # A service exports spans through a batch processor: the same cost here, discarded.
    exporter = CountingExporter()
    setup_tracing("ingest").add_span_processor(BatchSpanProcessor(exporter))
    with tempfile.TemporaryDirectory(prefix="csfabric-bench-ingest-") as tmp:
        server = start_server(Path(tmp) / "nats")
        tansu = TansuServer(Path(tmp) / "kafka", free_port(), find_tansu())
        async with server, tansu:
            setup = await Bus.connect(server.url, service="bench-setup")  # creates streams
            env = Env(
                server.url, tansu.bootstrap, args.amqp_url, args.events, args.prefetch,
                args.kafka_batch, args.timeout, server.pid, setup.js,
            )  # fmt: skip
            results = [await run_path(env, k) for k in keys]
            await setup.close()
    for result in results:
        raw = next((r for r in results if r.key == "raw-" + result.key.split("-")[1]), None)
        if raw is not None and not raw.error and not result.error:
            result.ratio_to_raw = result.rate / raw.rate
    machine = machine_info()
    load = f"load {load_at_start} → {machine['loadavg_1m']}"
    print_table(f"csfabric ingest benchmark, N={args.events}, {load}", results, None)
    body = {
        "benchmark": "ingest",
        "events": args.events,
        "machine": {**machine, "loadavg_1m_at_start": load_at_start},
        "spans_exported": exporter.exported,
        "paths": [r.as_json() for r in results],
    }
    write_json(args.out, body)
    print(f"wrote {args.out}")
    if failed := [r.key for r in results if r.error]:
        print(f"FAILED paths: {failed}", file=sys.stderr)
        return 1
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="N events (default 20000)")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset")
    parser.add_argument("--prefetch", type=int, default=256, help="AMQP prefetch (ingest's)")
    parser.add_argument("--kafka-batch", type=int, default=500, help="raw getmany max_records")
    parser.add_argument("--amqp-url", default=RABBITMQ, help="the machine's RabbitMQ")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per path")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(parse_args())))
    except asyncio.CancelledError:
        sys.exit("bench: stopped by SIGTERM")
