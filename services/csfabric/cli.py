"""``csfabric``: run a service, run the local stack, check the environment, manage schemas.

Commands import what they need when they run, so ``csfabric --version`` and ``--help``
stay fast and a missing optional broker client only affects the command that uses it.
The checks of ``csfabric doctor`` come last; every string it prints passes :func:`_safe`,
so a URL with a password or a registered secret never reaches the terminal.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from csfabric import __version__
from csfabric.dev import (
    DEFAULT_METRICS_PORT,
    DEFAULT_NATS_PORT,
    DevOptions,
    mask_url,
    run_dev,
)
from csfabric.devstack import Extra, ExtraPorts
from csfabric.doctor import Check, run_checks
from csfabric.kernel.errors import CsfabricError
from csfabric.kernel.logs import redact, register_secret
from csfabric.kernel.registry import SERVICES_GROUP, available
from csfabric.kernel.settings import FabricSettings
from csfabric.policy_cli import pause_command, policy_app, resume_command
from csfabric.simulator_cli import simulator_app

app = typer.Typer(
    name="csfabric",
    help="Event-driven automation fabric for Apache CloudStack clouds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
schemas_app = typer.Typer(
    help="JSON Schemas generated from the event models.", no_args_is_help=True
)
app.add_typer(schemas_app, name="schemas")
app.add_typer(policy_app, name="policy")
app.add_typer(simulator_app, name="simulator")
app.command("pause")(pause_command)
app.command("resume")(resume_command)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
SchemaDir = Annotated[
    Path, typer.Option("--out", "--dir", help="The schemas directory.", file_okay=False)
]


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
def run(
    service: Annotated[str, typer.Argument(help="A registered service name.")],
    ops_port: Annotated[
        int | None, typer.Option(help="Metrics/health port (default $CSFABRIC_OPS_PORT or free).")
    ] = None,
) -> None:
    """Run one service in the foreground until SIGTERM or Ctrl-C."""
    services = available()
    if service not in services:
        names = ", ".join(services) or (
            f"none installed yet (services register in the {SERVICES_GROUP!r} entry-point group)"
        )
        typer.echo(f"csfabric: unknown service {service!r}; available: {names}", err=True)
        raise typer.Exit(2)
    from csfabric.kernel.runtime import run_service

    try:
        setup = services[service].load()
        asyncio.run(run_service(service, setup, ops_port=ops_port))
    except CsfabricError as exc:
        typer.echo(f"csfabric run {service}: {redact(str(exc))}", err=True)
        raise typer.Exit(1) from None
    except Exception:
        logging.getLogger("csfabric.cli").exception("service %s failed", service)
        raise typer.Exit(1) from None


@app.command()
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
) -> None:
    """Run nats-server and every service on 127.0.0.1 until Ctrl-C; writes dev.json.

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
    )
    raise typer.Exit(asyncio.run(run_dev(options)))


@app.command()
def doctor(as_json: JsonFlag = False) -> None:
    """Check brokers, endpoints and local server binaries; exit 1 if a configured one fails."""
    # The report is the output: stray library warnings (aiokafka, aiormq) would garble it.
    logging.getLogger().addHandler(logging.NullHandler())
    settings = FabricSettings()
    for secret in (settings.cloudstack_key, settings.cloudstack_secret):
        if secret is not None:
            register_secret(secret.get_secret_value())
    checks = asyncio.run(run_checks(settings))
    failed = [c for c in checks if c.failed]
    if as_json:
        report = {"ok": not failed, "checks": [_safe_check(c) for c in checks]}
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_table(checks)
    raise typer.Exit(1 if failed else 0)


def _safe(text: str) -> str:
    return redact(mask_url(text))


def _safe_check(check: Check) -> dict[str, object]:
    return {
        "component": check.component,
        "target": _safe(check.target),
        "status": check.status,
        "detail": _safe(check.detail),
        "fix": check.fix,  # written here, never taken from settings
        "required": check.required,
    }


_STYLE = {"ok": "green", "missing": "yellow", "unreachable": "red", "not configured": "dim"}


def _print_table(checks: list[Check]) -> None:
    table = Table(title="csfabric doctor")
    for column in ("component", "target", "status", "fix"):
        table.add_column(column, overflow="fold")
    for check in checks:
        row = _safe_check(check)
        status = f"[{_STYLE[check.status]}]{check.status}[/]"
        if row["detail"]:
            status += f"\n[dim]{row['detail']}[/]"
        name = check.component + ("" if check.required else " [dim](optional)[/]")
        table.add_row(name, str(row["target"]), status, str(row["fix"]))
    Console().print(table)


@app.command()
def status(as_json: JsonFlag = False) -> None:
    """Services seen, lease holders, consumer lag, DLQ depth, paused policies; 1 if no NATS."""
    from csfabric.status import run_status

    raise typer.Exit(asyncio.run(run_status(as_json)))


@schemas_app.command("export")
def schemas_export(out: SchemaDir = Path("schemas"), as_json: JsonFlag = False) -> None:
    """Write one <name>.schema.json per model (and delete schemas no model makes)."""
    from csfabric.events.schemas import export

    result = export(out)
    if as_json:
        typer.echo(json.dumps({"directory": str(out), **result}, indent=2))
        return
    for action in ("written", "removed", "unchanged"):
        for name in result[action]:
            typer.echo(f"{action:9} {out / name}")


@schemas_app.command("check")
def schemas_check(directory: SchemaDir = Path("schemas"), as_json: JsonFlag = False) -> None:
    """Exit 1 when the schemas directory differs from what the models generate."""
    from csfabric.events.schemas import compare

    diff = compare(directory)
    if as_json:
        typer.echo(json.dumps(diff.as_dict(), indent=2))
    elif diff.ok:
        typer.echo(f"{directory}/ is up to date with the models")
    else:
        typer.echo(f"{directory}/ differs from the models:")
        for kind in ("stale", "missing", "extra"):
            for name in getattr(diff, kind):
                typer.echo(f"  {kind:8} {directory / name}")
        for text in diff.diffs.values():
            typer.echo(text)
        typer.echo("run `csfabric schemas export` and commit the result")
    raise typer.Exit(0 if diff.ok else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
