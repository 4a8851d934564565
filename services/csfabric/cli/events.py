"""``csfabric events tail [PATTERN] [--since 10m] [--json]``: watch the backbone live.

One ordered ephemeral consumer per stream the pattern reaches (``CSFABRIC_EVENTS`` and,
for ``csfabric.>`` or a pattern that names them, the alert, audit, control and dead-letter
streams; replays and policy history only when the pattern is inside them), each filtered
to the part of the pattern that stream stores.  Nothing is acknowledged and nothing stays
behind: the server drops the consumers when the command ends.  New messages only, unless
``--since`` asks for the last minutes (deliver by start time).  One line per message
(:mod:`csfabric.cli._eventline`), or one JSON object per line with ``--json``.  The NATS
URL comes from the usual settings, a running ``csfabric dev``'s ``dev.json`` included.
Exit code 0 after Ctrl-C or SIGTERM, 1 when NATS cannot be reached or the connection is
lost, 2 for a bad pattern or duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TextIO

import typer
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from csfabric.cli._common import NATS_FIX, JsonFlag
from csfabric.cli._eventline import EventLine, describe, json_line
from csfabric.devstack import connect_once, mask_url
from csfabric.kernel import CsfabricError, FabricSettings, parse_duration, redact, wants_colour
from csfabric.kernel.bus import STREAMS
from csfabric.kernel.bus import subject_intersection as intersect

__all__ = ["events_app", "plan_tail", "tail_events"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Tailed whenever the pattern reaches them; the others only when it lies inside them.
BACKBONE = ("CSFABRIC_EVENTS", "CSFABRIC_ALERTS", "CSFABRIC_AUDIT", "CSFABRIC_CONTROL",
            "CSFABRIC_DLQ")  # fmt: skip

events_app = typer.Typer(help="Watch the events on the backbone.", no_args_is_help=True)


@events_app.command("tail")
def tail(
    pattern: Annotated[
        str, typer.Argument(help="NATS subject pattern, e.g. 'csfabric.cloudstack.action.VM.>'.")
    ] = "csfabric.>",
    since: Annotated[
        str | None, typer.Option(help="Start this long ago (10m, 2h, PT30M); default: new only.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print events as they arrive (type, time, summary, trace id) until Ctrl-C."""
    try:
        check_pattern(pattern)
        back = parse_duration(since) if since is not None else None
    except ValueError as exc:
        typer.echo(f"csfabric events tail: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(asyncio.run(tail_events(pattern, back, as_json)))


def check_pattern(pattern: str) -> None:
    tokens = pattern.split(".")
    if not pattern or any(not t or (t != "*" and t != ">" and not _literal(t)) for t in tokens):
        raise ValueError(f"bad subject pattern {pattern!r}: dotted words, * or >")
    if ">" in tokens[:-1]:
        raise ValueError(f"bad subject pattern {pattern!r}: '>' must be the last word")


def _literal(token: str) -> bool:
    return not any(c in token for c in " \t\r\n*>")


def plan_tail(pattern: str) -> list[tuple[str, str]]:
    """``(stream, filter subject)`` for every stream (and subject of it) the pattern reaches."""
    plan = []
    for stream, subjects in STREAMS.items():
        for stored in subjects:
            common = intersect(pattern, stored)
            if common is not None and (stream in BACKBONE or common == pattern):
                plan.append((stream, common))
    return plan


async def tail_events(
    pattern: str,
    since: timedelta | None,
    as_json: bool,
    settings: FabricSettings | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    settings = settings or FabricSettings()
    try:
        nc = await connect_once(settings.nats_url)
    except CsfabricError as exc:
        print(f"csfabric events tail: {redact(str(exc))}; {NATS_FIX}", file=sys.stderr, flush=True)
        return 1
    queue: asyncio.Queue[Msg] = asyncio.Queue(maxsize=10_000)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        streams = await _subscribe(nc, pattern, since, queue.put)
        if not streams:
            print(f"csfabric events tail: no stream stores {pattern!r}; one of "
                  f"{', '.join(s for ss in STREAMS.values() for s in ss)}",
                  file=sys.stderr, flush=True)  # fmt: skip
            return 2
        start = f"since {since}" if since is not None else "new events only"
        print(f"watching {pattern} on {', '.join(streams)} at {mask_url(settings.nats_url)} "
              f"({start}; Ctrl-C to stop)", file=sys.stderr, flush=True)  # fmt: skip
        return await _print_until_stopped(nc, queue, stop, as_json, out)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        with contextlib.suppress(Exception):
            await nc.close()


def _start(since: timedelta | None) -> ConsumerConfig:
    # A new config per subscription: the client fills in its filter and inbox.
    if since is None:
        return ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
    now = datetime.now(UTC)
    if since >= now - EPOCH:  # further back than anything stored (and than datetime goes)
        return ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=now - since)


async def _subscribe(
    nc: Client, pattern: str, since: timedelta | None, put: Callable[[Msg], Awaitable[None]]
) -> list[str]:
    js = nc.jetstream(timeout=5.0)
    streams: list[str] = []
    for stream, subject in plan_tail(pattern):
        try:
            await js.stream_info(stream)
        except NotFoundError:
            continue  # not created yet (no service ran here): nothing to show from it
        config = _start(since)
        await js.subscribe(subject, stream=stream, config=config, ordered_consumer=True, cb=put)
        if stream not in streams:
            streams.append(stream)
    return streams


async def _print_until_stopped(
    nc: Client, queue: asyncio.Queue[Msg], stop: asyncio.Event, as_json: bool, out: TextIO
) -> int:
    colour = not as_json and wants_colour(out)
    while not stop.is_set():
        try:
            msg = await asyncio.wait_for(queue.get(), 0.5)
        except TimeoutError:
            if nc.is_closed or not nc.is_connected:
                print("csfabric events tail: lost the NATS connection", file=sys.stderr)
                return 1
            continue
        line = _line(msg)
        try:
            print(json_line(line) if as_json else render(line, colour), file=out, flush=True)
        except BrokenPipeError:  # `| head`: the reader has gone, which is a normal end
            return 0
    return 0


def _line(msg: Msg) -> EventLine:
    stream = seq = stored = None
    with contextlib.suppress(Exception):
        meta = msg.metadata
        stream, seq, stored = meta.stream, meta.sequence.stream, meta.timestamp
    return describe(msg.subject, msg.data, msg.headers, stream=stream, seq=seq, stored=stored)


def render(line: EventLine, colour: bool = False) -> str:
    """``18:04:05  cloudstack.action.VM.CREATE  VM.CREATE Completed <uuid> by admin  trace=…``."""

    def paint(code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if colour else text

    stamp = "-"
    if line.time is not None:
        when = line.time.astimezone()  # local time, for the person reading
        today = when.date() == datetime.now().astimezone().date()
        stamp = when.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M:%S")
    extra = []
    if line.subject not in (f"csfabric.{line.type}", f"csfabric.lifecycle.{line.type}"):
        extra.append(f"subject={line.subject}")
    if line.trace_id:
        extra.append(f"trace={line.trace_id}")
    tail = f"  {paint('2', ' '.join(extra))}" if extra else ""
    kind = paint("33" if line.type == "dead-letter" else "36", f"{line.type:<28}")
    return f"{paint('2', stamp)}  {kind}  {line.summary}{tail}"
