"""``csfabric dr report [--from T] [--to T] [--html FILE] [--json]``: the DR evidence for a range.

Reads the audit and alert streams (:mod:`csfabric.cli.dr_evidence`) and writes one
self-contained HTML page (:mod:`csfabric.cli.dr_html`): the achieved RPO over time per
policy as a chart, every breach with start, end (or open) and cause, every drill.  ``--from``
and ``--to`` take ISO 8601 times (``2026-12-06T09:00Z``), ``now``, or a duration meaning
that long ago (``24h``); the default is the last 24 hours on the fabric clock.  ``--json``
prints the same data.  It only reads: no consumer is left on the server.  Exit 1 when NATS
cannot be reached, 2 for a bad time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from csfabric.cli._common import JsonFlag
from csfabric.cli.dr_evidence import ReportData

FromOpt = Annotated[str, typer.Option("--from", help="Start: ISO 8601, 'now' or a duration ago.")]
ToOpt = Annotated[str, typer.Option("--to", help="End: ISO 8601, 'now' or a duration ago.")]
HtmlOpt = Annotated[Path | None, typer.Option("--html", help="Write the HTML page here.")]


def parse_when(text: str, now: datetime) -> datetime:
    """``now``, an ISO 8601 time (UTC when it names no zone), or a duration before ``now``."""
    from csfabric.kernel import parse_duration

    if text.strip().lower() == "now":
        return now
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - parse_duration(text)
        except ValueError:
            raise ValueError(
                f"bad time {text!r}: expected ISO 8601 (2026-12-06T09:00Z), now, or 24h"
            ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def report_json(data: ReportData) -> dict[str, Any]:
    out = {
        "from": data.start,
        "to": data.end,
        "read": data.read,
        "unreadable": data.unreadable,
        "rpo": {name: [dataclasses.asdict(p) for p in pts] for name, pts in data.points.items()},
        "breaches": [dataclasses.asdict(b) for b in data.breaches],
        "drills": [d.model_dump(mode="json") for d in data.drills],
    }
    return json.loads(json.dumps(out, default=lambda v: v.isoformat()))  # type: ignore[no-any-return]


async def load(start_text: str, end_text: str) -> ReportData:
    from csfabric.cli.dr_evidence import read_report
    from csfabric.devstack import connect_once
    from csfabric.kernel import FabricSettings, parse_clock

    settings = FabricSettings()
    now = parse_clock(settings.clock).now()
    start, end = parse_when(start_text, now), parse_when(end_text, now)
    if start > end:
        raise ValueError(f"--from {start.isoformat()} is after --to {end.isoformat()}")
    nc = await connect_once(settings.nats_url)
    try:
        return await read_report(nc.jetstream(), start, end)
    finally:
        await nc.close()


def report_command(
    start: FromOpt = "24h",
    end: ToOpt = "now",
    html_file: HtmlOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """The evidence an auditor asks for: RPO over time, breaches, drills (HTML and/or JSON)."""
    from csfabric.cli.dr_html import render_html
    from csfabric.cli.dr_plan import fail
    from csfabric.kernel import CsfabricError

    try:
        data = asyncio.run(load(start, end))
    except ValueError as error:
        typer.echo(f"csfabric: {error}", err=True)
        raise typer.Exit(2) from None
    except (CsfabricError, OSError) as error:
        raise fail(error) from None
    if html_file is not None:
        html_file.write_text(render_html(data), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(report_json(data), indent=2))
    elif html_file is not None:
        typer.echo(
            f"wrote {html_file}: {sum(len(p) for p in data.points.values())} evidence records "
            f"of {len(data.points)} policies, {len(data.breaches)} breaches, "
            f"{len(data.drills)} drills"
        )
    else:
        typer.echo("nothing to write: give --html FILE and/or --json", err=True)
        raise typer.Exit(2)


def register(dr_app: typer.Typer) -> None:
    dr_app.command("report")(report_command)


__all__ = ["load", "parse_when", "register", "report_json"]
