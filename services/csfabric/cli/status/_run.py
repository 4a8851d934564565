"""``csfabric status`` itself: connect, collect, print (tables, or JSON with ``--json``)."""

from __future__ import annotations

import json
import sys

from rich.console import Console

from csfabric.cli.status._collect import collect_status
from csfabric.cli.status._render import render
from csfabric.devstack import connect_once, mask_url
from csfabric.kernel import CsfabricError, FabricSettings, parse_clock, redact
from csfabric.kernel.bus import Bus

NATS_FIX = "start `csfabric dev`, or set CSFABRIC_NATS_URL"


async def run_status(as_json: bool, settings: FabricSettings | None = None) -> int:
    """Print the report (tables, or JSON on stdout); 1 when NATS cannot be reached."""
    settings = settings or FabricSettings()
    try:
        clock = parse_clock(settings.clock)  # lease expiry is judged on the fabric clock
        nc = await connect_once(settings.nats_url)
    except CsfabricError as exc:
        fix = f"; {NATS_FIX}" if "NATS" in str(exc) else ""
        print(f"csfabric status: {redact(str(exc))}{fix}", file=sys.stderr, flush=True)
        return 1
    # A plain Bus over the connection: a read-only command creates no streams.
    bus = Bus(nc, service="status", clock=clock)
    try:
        report = await collect_status(bus)
    finally:
        await nc.close()
    if as_json:
        print(json.dumps(report.model_dump(mode="json"), indent=2), flush=True)
    else:
        render(report, Console(), mask_url(settings.nats_url))
    return 0


__all__ = ["NATS_FIX", "run_status"]
