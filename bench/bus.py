"""Events/s through three consume paths, on one private nats-server, in one run.

    .venv/bin/python bench/bus.py [--events 20000] [--out bench/results/bus.json]

N CloudStack ``VM.CREATE`` events are published once into ``CSFABRIC_EVENTS``; every path
then drains all N through its own fresh durable consumer, publishing one result (or audit
record) per event with publish-acks, and acking the input only after that.  The clock
stops when the server has every input ack.  See bench/README.md for what each path means.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import nats
from _common import (
    EVENT_SUBJECT,
    BenchError,
    CountingExporter,
    PathResult,
    machine_info,
    print_table,
    start_server,
    stream_messages,
    traceparent,
    vm_create_event,
    wait_acked,
    wait_until,
    write_json,
)
from csfabric.kernel.audit import Auditor, AuditRecord, audit_id
from csfabric.kernel.bus import MSG_ID, Bus
from csfabric.kernel.consumer import Consumer, ConsumerOptions, Delivery
from csfabric.kernel.envelope import CloudEvent
from csfabric.kernel.tracing import setup_tracing, telemetry_middleware
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

EVENTS = "CSFABRIC_EVENTS"
AUDIT = "CSFABRIC_AUDIT"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bus.json"


@dataclass
class Ctx:
    url: str
    n: int
    timeout: float
    provider: TracerProvider
    js: JetStreamContext  # the setup connection: polls consumer state for every path


PathFn = Callable[[Ctx, str, str], Awaitable[PathResult]]


async def _finish(ctx: Ctx, durable: str) -> dict[str, int]:
    return await wait_acked(ctx.js, EVENTS, durable, ctx.n, ctx.timeout)


def _result_json(key: str, event_id: str) -> bytes:
    # About the size of an audit record, so the raw path writes what the kernel writes.
    return json.dumps(
        {
            "id": audit_id(f"{key}:{event_id}"),
            "time": "2025-11-27T12:00:00Z",
            "service": f"bench-{key}",
            "decision": "record",
            "reason": "benchmark: VM created",
            "input_event_ids": [event_id],
            "action": "VM.CREATE",
            "outcome": "success",
        },
        separators=(",", ":"),
    ).encode()


async def raw_path(ctx: Ctx, key: str, label: str, batch: int = 256, depth: int = 4) -> PathResult:
    """Plain nats-py: fetch(batch), publish_async per message, one gather, then ack.

    Up to ``depth`` batches are in flight, so fetching overlaps with waiting for pub-acks.
    """
    nc = await nats.connect(ctx.url)
    js = nc.jetstream()
    durable = f"bench-{key}"
    await js.add_consumer(
        EVENTS,
        ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=EVENT_SUBJECT,
            max_ack_pending=batch * (depth + 2),
        ),
    )
    sub = await js.pull_subscribe_bind(durable=durable, stream=EVENTS)
    subject = f"csfabric.audit.bench-{key}"
    slots = asyncio.Semaphore(depth)
    done = 0

    async def settle(msgs: list[Any]) -> None:
        nonlocal done
        try:
            futures = []
            for msg in msgs:
                event_id = json.loads(msg.data)["id"]
                headers = {MSG_ID: f"{key}:{event_id}"}
                payload = _result_json(key, event_id)
                futures.append(await js.publish_async(subject, payload, headers=headers))
            await asyncio.gather(*futures)
            for msg in msgs:
                await msg.ack()
            done += len(msgs)
        finally:
            slots.release()

    started = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    fetched = 0
    while fetched < ctx.n:
        try:
            msgs = await sub.fetch(batch, timeout=1.0)
        except TimeoutError:
            if time.perf_counter() - started > ctx.timeout:
                raise BenchError(f"{label}: only {fetched} fetched") from None
            continue
        fetched += len(msgs)
        await slots.acquire()
        tasks.append(asyncio.create_task(settle(msgs)))
    await asyncio.gather(*tasks)
    checks = await _finish(ctx, durable)
    seconds = time.perf_counter() - started
    await nc.drain()
    checks["handled"] = done
    return PathResult(key, label, ctx.n, seconds, {"batch": batch, "depth": depth}, checks)


async def kernel_path(
    ctx: Ctx, key: str, label: str, batch: int = 128, workers: int = 64
) -> PathResult:
    """csfabric's Consumer: envelope parse, CONSUMER span, handler, one audit record, ack."""
    bus = await Bus.connect(ctx.url, service="bench", create_streams=False)
    auditor = Auditor(bus)

    async def handle(event: CloudEvent, delivery: Delivery) -> None:
        await auditor.emit(
            action_key=f"{key}:{event.id}",
            decision="record",
            reason="benchmark: VM created",
            input_event_ids=[event.id],
            action="VM.CREATE",
        )

    durable = f"bench-{key}"
    options = ConsumerOptions(stream=EVENTS, batch=batch, max_workers=workers)
    consumer = Consumer(bus, EVENT_SUBJECT, durable, handle, options)
    started = time.perf_counter()
    await consumer.start()
    await wait_until(
        lambda: consumer.handled + consumer.dead_lettered >= ctx.n,
        ctx.timeout,
        label,
        lambda: consumer.handled,
    )
    checks = await _finish(ctx, durable)
    seconds = time.perf_counter() - started
    await consumer.stop()
    await bus.close()
    checks.update(handled=consumer.handled, dead_lettered=consumer.dead_lettered)
    settings = {"batch": batch, "max_workers": workers, "tracing": True}
    return PathResult(key, label, ctx.n, seconds, settings, checks)


async def faststream_path(
    ctx: Ctx, key: str, label: str, workers: int | None = None, otel: bool = True
) -> PathResult:
    """FastStream's pull subscriber (fetch 256, one handler call per message)."""
    from faststream.nats import JStream, NatsBroker, PullSub

    middlewares = (telemetry_middleware(ctx.provider),) if otel else ()
    # No access log: the kernel does not log per message either.
    broker = NatsBroker(ctx.url, logger=None, middlewares=middlewares)
    durable = f"bench-{key}"
    subject = f"csfabric.audit.bench-{key}"
    handled = 0

    @broker.subscriber(
        EVENT_SUBJECT,
        stream=JStream(EVENTS, declare=False),
        durable=durable,
        pull_sub=PullSub(batch_size=256),
        max_workers=workers,
    )
    async def handle(event: CloudEvent) -> None:
        nonlocal handled
        action_key = f"{key}:{event.id}"
        record = AuditRecord(
            id=audit_id(action_key),
            time=event.time or datetime.now(UTC),
            service=f"bench-{key}",
            decision="record",
            reason="benchmark: VM created",
            input_event_ids=[event.id],
            action="VM.CREATE",
        )
        await broker.publish(record, subject, stream=AUDIT, headers={MSG_ID: record.id})
        handled += 1

    await broker.connect()
    started = time.perf_counter()
    await broker.start()
    await wait_until(lambda: handled >= ctx.n, ctx.timeout, label, lambda: handled)
    checks = await _finish(ctx, durable)
    seconds = time.perf_counter() - started
    await broker.stop()
    checks["handled"] = handled
    settings = {"pull_batch": 256, "max_workers": workers or 1, "tracing": otel}
    return PathResult(key, label, ctx.n, seconds, settings, checks)


PATHS: dict[str, tuple[str, PathFn]] = {
    "raw": ("(a) nats-py fetch(256), publish_async, ack", raw_path),
    "kernel-w1": ("(b) Consumer batch=128 workers=1", partial(kernel_path, workers=1)),
    "kernel-w64": ("(b) Consumer batch=128 workers=64", kernel_path),
    "kernel-w256": (
        "(b) Consumer batch=256 workers=256",
        partial(kernel_path, batch=256, workers=256),
    ),
    "fs-pull": ("(c) FastStream PullSub(256), otel", faststream_path),
    "fs-pull-w64": (
        "(c) FastStream PullSub(256) workers=64, otel",
        partial(faststream_path, workers=64),
    ),
    "fs-pull-plain": (
        "(c) FastStream PullSub(256), no otel",
        partial(faststream_path, otel=False),
    ),
}


async def prepublish(js: JetStreamContext, n: int) -> PathResult:
    """Publish the N input events once (timed on its own, with publish_async)."""
    events = [vm_create_event(i) for i in range(n)]
    started = time.perf_counter()
    futures = []
    for event_id, body in events:
        headers = {MSG_ID: event_id, "traceparent": traceparent()}
        futures.append(await js.publish_async(EVENT_SUBJECT, body, headers=headers))
    acks = await asyncio.gather(*futures)
    seconds = time.perf_counter() - started
    stored = await stream_messages(js, EVENTS)
    duplicates = sum(1 for ack in acks if ack.duplicate)
    if stored != n or duplicates:
        raise BenchError(f"publish: {stored} of {n} events stored, {duplicates} duplicates")
    size = sum(len(body) for _, body in events) / n
    label = f"(setup) publish_async of the N events, {size:.0f} B each"
    return PathResult("publish", label, n, seconds, {"event_bytes": round(size)}, {})


async def run_path(
    ctx: Ctx, key: str, exporter: CountingExporter, profile: Path | None
) -> PathResult:
    label, fn = PATHS[key]
    js = ctx.js
    before = await stream_messages(js, AUDIT)
    spans_before = exporter.exported
    gc.collect()
    profiler = cProfile.Profile() if profile else None
    try:
        if profiler is not None:
            profiler.enable()
        result = await fn(ctx, key, label)
    except BenchError as exc:
        return PathResult(key, label, ctx.n, 0.0, error=str(exc))
    finally:
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile / f"{key}.pstats")
    ctx.provider.force_flush()
    result.checks["results_stored"] = await stream_messages(js, AUDIT) - before
    result.checks["spans_exported"] = exporter.exported - spans_before
    wrong = {k: v for k, v in result.checks.items() if k in ("handled", "results_stored")}
    if any(v != ctx.n for v in wrong.values()) or result.checks.get("dead_lettered"):
        result.error = f"expected {ctx.n} each: {result.checks}"
    return result


async def main(args: argparse.Namespace) -> int:
    # Bus.close() drains on purpose; its "disconnected, reconnecting" warning is noise here.
    logging.getLogger("csfabric.kernel.bus").setLevel(logging.ERROR)
    # dict.fromkeys: a path run twice would find its durable already drained.
    keys = list(dict.fromkeys(k.strip() for k in args.paths.split(",") if k.strip()))
    unknown = [k for k in keys if k not in PATHS]
    if unknown:
        raise SystemExit(f"unknown path(s) {unknown}; choose from {list(PATHS)}")
    provider = setup_tracing("bench")
    exporter = CountingExporter()
    # The exporter a service would use is OTLP behind a batch processor: same queueing.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    with tempfile.TemporaryDirectory(prefix="csfabric-bench-") as tmp:
        server = start_server(Path(tmp) / "nats")
        async with server:
            setup = await Bus.connect(server.url, service="bench-setup")
            ctx = Ctx(server.url, args.events, args.timeout, provider, setup.js)
            publish = await prepublish(setup.js, args.events)
            results = [await run_path(ctx, k, exporter, args.profile) for k in keys]
            await setup.close()
    raw = next((r for r in results if r.key == "raw" and not r.error), None)
    for result in results:
        if raw is not None and not result.error:
            result.ratio_to_raw = result.rate / raw.rate
    print_table(f"csfabric bus benchmark, N={args.events}", results, publish)
    body = {
        "benchmark": "bus",
        "events": args.events,
        "machine": machine_info(),
        "publish": publish.as_json(),
        "paths": [r.as_json() for r in results],
    }
    write_json(args.out, body)
    print(f"wrote {args.out}")
    failed = [r.key for r in results if r.error]
    if failed:
        print(f"FAILED paths: {failed}", file=sys.stderr)
        return 1
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="N events (default 20000)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per path")
    parser.add_argument("--profile", type=Path, help="write <dir>/<path>.pstats (cProfile)")
    args = parser.parse_args(argv)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
