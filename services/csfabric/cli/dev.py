"""``csfabric dev``: the embedded default (nats-server, simulator, every service)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from csfabric.cli.run import LogFormatOption
from csfabric.devstack import (
    DEFAULT_METRICS_PORT,
    DEFAULT_NATS_PORT,
    DevOptions,
    Extra,
    ExtraPorts,
    run_dev,
)
from csfabric.kernel import FabricSettings

__all__ = ["dev"]


def dev(
    state_dir: Annotated[
        Path | None, typer.Option(help="State directory (default $CSFABRIC_STATE_DIR or XDG).")
    ] = None,
    nats_port: Annotated[int, typer.Option(help="Port of the embedded nats-server.")] = (
        DEFAULT_NATS_PORT
    ),
    metrics_port: Annotated[
        int, typer.Option(help="First metrics/health port; one per service upwards.")
    ] = DEFAULT_METRICS_PORT,
    time_scale: Annotated[
        float | None,
        typer.Option(min=0.001, help="Run fabric time N times faster (CSFABRIC_CLOCK=scaled)."),
    ] = None,
    extras: Annotated[
        list[Extra] | None,
        typer.Option("--with", help="Also run this feed/server (repeatable)."),
    ] = None,
    no_demo: Annotated[bool, typer.Option("--no-demo", help="Skip the demo policies.")] = False,
    kafka_port: Annotated[int, typer.Option(help="Port of --with kafka.")] = ExtraPorts.kafka,
    powerdns_port: Annotated[
        int, typer.Option(help="PowerDNS API port of --with powerdns.")
    ] = ExtraPorts.powerdns,
    powerdns_dns_port: Annotated[
        int, typer.Option(help="PowerDNS DNS port of --with powerdns.")
    ] = ExtraPorts.powerdns_dns,
    simulator_port: Annotated[
        int | None,
        typer.Option(help="Port of the CloudStack simulator (default 18080)."),
    ] = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run nats-server and every service on 127.0.0.1 until Ctrl-C; writes dev.json.

    Ctrl-C, SIGTERM and closing the terminal stop everything cleanly; if this process is
    killed, its children stop too.  Stdout carries one JSON ready line, logs go to stderr.
    Exit code 1 when start-up fails, 2 when something --with needs is missing.
    """
    options = DevOptions(
        state_dir=(state_dir or FabricSettings().state_dir).expanduser().resolve(),
        nats_port=nats_port,
        metrics_port=metrics_port,
        time_scale=time_scale,
        extras=tuple(extra.value for extra in extras or ()),
        demo=not no_demo,
        ports=ExtraPorts(kafka_port, powerdns_port, powerdns_dns_port, simulator_port),
        log_format=log_format.value if log_format is not None else None,
    )
    raise typer.Exit(asyncio.run(run_dev(options)))
