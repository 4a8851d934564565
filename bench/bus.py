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
import gc
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import nats
from _common import (
    AUDIT,
    EVENT_SUBJECT,
    EVENTS,
    BenchError,
    CountingExporter,
    Ctx,
    PathResult,
    Stopwatch,
    finish,
    machine_info,
    prepublish,
    print_table,
    result_json,
    start_server,
    stream_messages,
    wait_until,
    write_json,
)
from csfabric.kernel import CloudEvent
from csfabric.kernel._audit import Auditor, AuditRecord, audit_id
from csfabric.kernel._tracing import (
    current_trace_id,
    sample_ratio,
    set_sample_ratio,
    setup_tracing,
    telemetry_middleware,
)
from csfabric.kernel.bus import MSG_ID, Bus, Consumer, ConsumerOptions, Delivery
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry.sdk.trace.export import BatchSpanProcessor

PathFn = Callable[[Ctx, str, str], Awaitable[PathResult]]
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bus.json"


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
    ctx.memory.progress = lambda: done

    async def settle(msgs: list[Any]) -> None:
        nonlocal done
        try:
            futures = []
            for msg in msgs:
                event_id = json.loads(msg.data)["id"]
                headers = {MSG_ID: f"{key}:{event_id}"}
                payload = result_json(key, event_id)
                futures.append(await js.publish_async(subject, payload, headers=headers))
            await asyncio.gather(*futures)
            for msg in msgs:
                await msg.ack()
            done += len(msgs)
        finally:
            slots.release()

    ctx.watch.start()
    tasks: list[asyncio.Task[None]] = []
    fetched = 0
    deadline = time.perf_counter() + ctx.timeout
    try:
        while fetched < ctx.n:
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except TimeoutError:
                if time.perf_counter() > deadline:
                    raise BenchError(f"{label}: only {fetched} fetched") from None
                continue
            fetched += len(msgs)
            await slots.acquire()
            tasks.append(asyncio.create_task(settle(msgs)))
        await asyncio.gather(*tasks)
        checks = await finish(ctx, durable)
        seconds = ctx.watch.stop()
    finally:
        await nc.close()  # every ack is on the server already (finish checked)
    checks["handled"] = done
    return PathResult(key, label, ctx.n, seconds, {"batch": batch, "depth": depth}, checks)


async def kernel_path(
    ctx: Ctx, key: str, label: str, batch: int = 128, workers: int = 64, sample: float = 1.0
) -> PathResult:
    """csfabric's Consumer: envelope parse, CONSUMER span, handler, one audit record, ack.

    ``sample`` is the fabric's trace sampling ratio (``CSFABRIC_TRACE_SAMPLE``) for the
    path: 1 traces every event; below 1 the rule of the tracing module keeps that share
    of traces (by trace id), and every failure and CloudStack call whatever the ratio.
    """
    previous_ratio = sample_ratio()
    set_sample_ratio(sample)
    try:
        return await _kernel_path(ctx, key, label, batch, workers, sample)
    finally:
        set_sample_ratio(previous_ratio)


async def _kernel_path(
    ctx: Ctx, key: str, label: str, batch: int, workers: int, sample: float
) -> PathResult:
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
    ctx.memory.progress = lambda: consumer.handled
    ctx.watch.start()
    try:
        await consumer.start()
        await wait_until(
            lambda: consumer.handled + consumer.dead_lettered >= ctx.n,
            ctx.timeout,
            label,
            lambda: consumer.handled,
        )
        checks = await finish(ctx, durable)
        seconds = ctx.watch.stop()
    finally:  # a failed path must not keep consuming CPU while the next one runs
        await consumer.stop()
        await bus.close()
    checks.update(handled=consumer.handled, dead_lettered=consumer.dead_lettered)
    settings = {"batch": batch, "max_workers": workers, "tracing": True, "trace_sample": sample}
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
    ctx.memory.progress = lambda: handled

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
            time=datetime.now(UTC),
            service=f"bench-{key}",
            decision="record",
            reason="benchmark: VM created",
            input_event_ids=[event.id],
            action="VM.CREATE",
            trace_id=current_trace_id(),
        )
        await broker.publish(record, subject, stream=AUDIT, headers={MSG_ID: record.id})
        handled += 1

    await broker.connect()
    ctx.watch.start()
    try:
        await broker.start()
        await wait_until(lambda: handled >= ctx.n, ctx.timeout, label, lambda: handled)
        checks = await finish(ctx, durable)
        seconds = ctx.watch.stop()
    finally:
        await broker.stop()
    checks["handled"] = handled
    settings = {"pull_batch": 256, "max_workers": workers or 1, "tracing": otel}
    return PathResult(key, label, ctx.n, seconds, settings, checks)


PATHS: dict[str, tuple[str, PathFn]] = {
    "raw": ("(a) nats-py fetch(256), publish_async, ack", raw_path),
    "kernel-w1": ("(b) Consumer batch=128 workers=1", partial(kernel_path, workers=1)),
    "kernel-w64": ("(b) Consumer batch=128 workers=64", kernel_path),
    "kernel-w64-s10": (
        "(b) Consumer batch=128 workers=64, 10% of traces",
        partial(kernel_path, sample=0.1),
    ),
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


async def run_path(ctx: Ctx, key: str, exporter: CountingExporter) -> PathResult:
    label, fn = PATHS[key]
    before = await stream_messages(ctx.js, AUDIT)
    spans_before = exporter.exported
    gc.collect()
    ctx.memory.progress = lambda: 0
    ctx.memory.start()
    try:
        result = await fn(ctx, key, label)
    except BenchError as exc:
        return PathResult(key, label, ctx.n, 0.0, error=str(exc))
    finally:
        memory = await ctx.memory.stop()
    result.memory = memory
    result.client_cpu, result.server_cpu = ctx.watch.client_cpu, ctx.watch.server_cpu
    ctx.provider.force_flush()
    result.checks["results_stored"] = await stream_messages(ctx.js, AUDIT) - before
    result.checks["spans_exported"] = exporter.exported - spans_before
    wrong = {k: v for k, v in result.checks.items() if k in ("handled", "results_stored")}
    if any(v != ctx.n for v in wrong.values()) or result.checks.get("dead_lettered"):
        result.error = f"expected {ctx.n} each: {result.checks}"
    return result


async def main(args: argparse.Namespace) -> int:
    # Bus.close() drains on purpose; its "disconnected, reconnecting" warning is noise here.
    logging.getLogger("csfabric.kernel.bus._connection").setLevel(logging.ERROR)
    # dict.fromkeys: a path run twice would find its durable already drained.
    keys = list(dict.fromkeys(k.strip() for k in args.paths.split(",") if k.strip()))
    unknown = [k for k in keys if k not in PATHS]
    if unknown:
        raise SystemExit(f"unknown path(s) {unknown}; choose from {list(PATHS)}")
    # SIGTERM (e.g. from `timeout`) cancels like Ctrl-C, so the server below is stopped.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    load_at_start = round(os.getloadavg()[0], 2)
    provider = setup_tracing("bench")
    exporter = CountingExporter()
    # The exporter a service would use is OTLP behind a batch processor: same queueing.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    with tempfile.TemporaryDirectory(prefix="csfabric-bench-") as tmp:
        server = start_server(Path(tmp) / "nats")
        async with server:
            setup = await Bus.connect(server.url, service="bench-setup")
            watch = Stopwatch(server.pid)
            ctx = Ctx(server.url, args.events, args.timeout, provider, setup.js, watch)
            publish = await prepublish(setup.js, args.events, server.pid)
            results = [await run_path(ctx, k, exporter) for k in keys]
            await setup.close()
    raw = next((r for r in results if r.key == "raw" and not r.error), None)
    for result in results:
        if raw is not None and not result.error:
            result.ratio_to_raw = result.rate / raw.rate
    machine = machine_info()
    title = (
        f"csfabric bus benchmark, N={args.events}, load {load_at_start} → {machine['loadavg_1m']}"
    )
    print_table(title, results, publish)
    body = {
        "benchmark": "bus",
        "events": args.events,
        "machine": {**machine, "loadavg_1m_at_start": load_at_start},
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
    return parser.parse_args(argv)


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(parse_args())))
    except asyncio.CancelledError:
        sys.exit("bench: stopped by SIGTERM")
