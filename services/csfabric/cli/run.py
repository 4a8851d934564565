"""``csfabric run SERVICE``: one service in the foreground."""

from __future__ import annotations

import asyncio
import logging
import os
from enum import StrEnum
from typing import Annotated

import typer

from csfabric.kernel import CsfabricError, redact
from csfabric.kernel.service import SERVICES_GROUP, available

__all__ = ["LogFormat", "LogFormatOption", "run"]


class LogFormat(StrEnum):
    """What ``--log-format`` accepts: auto is text on a terminal, JSON lines otherwise."""

    auto = "auto"
    json = "json"
    text = "text"


LogFormatOption = Annotated[
    LogFormat | None,
    typer.Option(
        envvar="CSFABRIC_LOG_FORMAT",
        help="Log lines as JSON or readable text (default: text on a terminal, else JSON).",
    ),
]


def run(
    service: Annotated[str, typer.Argument(help="A registered service name.")],
    ops_port: Annotated[
        int | None, typer.Option(help="Metrics/health port (default $CSFABRIC_OPS_PORT or free).")
    ] = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run one service in the foreground until SIGTERM or Ctrl-C."""
    services = available()
    if service not in services:
        names = ", ".join(services) or (
            f"none installed yet (services register in the {SERVICES_GROUP!r} entry-point group)"
        )
        typer.echo(f"csfabric: unknown service {service!r}; available: {names}", err=True)
        raise typer.Exit(2)
    from csfabric.devstack import watch_lifeline
    from csfabric.kernel.service import run_service

    watch_lifeline()  # started by `csfabric dev`: end with it, even if it is SIGKILLed

    if log_format is not None:  # the runtime sets up logging, and reads it from there
        os.environ["CSFABRIC_LOG_FORMAT"] = log_format.value

    try:
        setup = services[service].load()
        asyncio.run(run_service(service, setup, ops_port=ops_port))
    except CsfabricError as exc:
        typer.echo(f"csfabric run {service}: {redact(str(exc))}", err=True)
        raise typer.Exit(1) from None
    except Exception:
        logging.getLogger("csfabric.cli").exception("service %s failed", service)
        raise typer.Exit(1) from None
