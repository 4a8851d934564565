"""The ``csfabric`` command: it only registers the command groups.

Commands import what they need when they run, so ``csfabric --version`` and ``--help``
stay fast and a missing optional broker client only affects the command that uses it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from csfabric import __version__
from csfabric.cli._common import JsonFlag
from csfabric.cli.dev import dev
from csfabric.cli.doctor import doctor
from csfabric.cli.dr import dr_app
from csfabric.cli.events import events_app
from csfabric.cli.policy import pause_command, policy_app, resume_command
from csfabric.cli.run import run
from csfabric.cli.schemas import schemas_app
from csfabric.cli.simulator import simulator_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="csfabric",
    help="Event-driven automation fabric for Apache CloudStack clouds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(run)
app.command()(dev)
app.command()(doctor)
app.add_typer(policy_app, name="policy")
app.command("pause")(pause_command)
app.command("resume")(resume_command)
app.add_typer(simulator_app, name="simulator")
app.add_typer(schemas_app, name="schemas")
app.add_typer(events_app, name="events")
app.add_typer(dr_app, name="dr")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"csfabric {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Event-driven automation fabric for Apache CloudStack clouds."""


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Services seen, lease holders, consumer lag, DLQ depth, paused policies; 1 if no NATS."""
    from csfabric.cli.status import run_status

    raise typer.Exit(asyncio.run(run_status(as_json)))


def main() -> None:
    app()
