"""``csfabric simulator``: run the CloudStack simulator; ``csfabric simulator keys``.

``csfabric simulator --port P [--world demo] [--seed N] [--time-scale N]`` serves
``/client/api`` (and the admin endpoint ``/admin/faults``) on 127.0.0.1 until SIGTERM or
Ctrl-C.  Faults can be set at start (``--fault CMD:RATE[:CODE]``, ``--latency CMD:SECONDS``,
``--throttle CMD:PER_SECOND``) and changed while it runs through the admin endpoint.  Events
go to its ``listEvents`` log always and to each feed named (``--rabbitmq``, ``--kafka``,
``--webhook``).  Time is ``CSFABRIC_CLOCK`` unless ``--time-scale`` is given.

Stdout carries one line, ``csfabric simulator ready: {"endpoint": …}`` — never keys; the
keys are in ``<state dir>/simulator-keys.json`` (0600), which ``keys`` prints.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from csfabric.kernel import SIMULATOR_KEYS_FILE as KEYS_FILE
from csfabric.kernel import (
    ConfigError,
    CsfabricError,
    default_state_dir,
    parse_clock,
    read_dev_file,
    redact,
    register_secret,
    scaled_spec,
    setup_logging,
)

if TYPE_CHECKING:
    from csfabric.cloudstack.simulator import EventSink

log = logging.getLogger("csfabric.simulator")

DEFAULT_PORT = 18080
READY_PREFIX = "csfabric simulator ready: "
WORLDS = ("demo", "minimal")

simulator_app = typer.Typer(
    help="A CloudStack API simulator for development, demos and tests.",
    invoke_without_command=True,
)


@simulator_app.callback(invoke_without_command=True)
def simulator(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port on --host.")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    world: Annotated[str, typer.Option(help=f"Seeded world: {', '.join(WORLDS)}.")] = "demo",
    seed: Annotated[int, typer.Option(help="Same seed, same world and API keys.")] = 0,
    time_scale: Annotated[
        float | None,
        typer.Option(min=0.001, help="Run fabric time N times faster (else $CSFABRIC_CLOCK)."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where the keys file goes (default $CSFABRIC_STATE_DIR).")
    ] = None,
    job_latency: Annotated[
        float, typer.Option(min=0, help="Fabric seconds an async job takes.")
    ] = 0.5,
    copy_latency: Annotated[
        float | None,
        typer.Option(
            min=0, help="Fabric seconds a snapshot copy to another zone takes (job latency)."
        ),
    ] = None,
    fault: Annotated[
        list[str] | None, typer.Option(help="CMD:RATE[:CODE] errors (repeatable; CMD may be *).")
    ] = None,
    latency: Annotated[
        list[str] | None, typer.Option(help="CMD:SECONDS added latency (repeatable).")
    ] = None,
    throttle: Annotated[
        list[str] | None, typer.Option(help="CMD:PER_SECOND, then 429 (repeatable).")
    ] = None,
    fault_seed: Annotated[int | None, typer.Option(help="Seed of the fault dice.")] = None,
    rabbitmq: Annotated[
        str | None, typer.Option(help="AMQP URL: publish to the cloudstack-events exchange.")
    ] = None,
    kafka: Annotated[
        str | None, typer.Option(help="Kafka bootstrap: produce to the cloudstack topic.")
    ] = None,
    webhook: Annotated[str | None, typer.Option(help="POST ActionEvents to this URL.")] = None,
    webhook_secret_file: Annotated[
        Path | None, typer.Option(help="File holding the webhook signing secret.")
    ] = None,
) -> None:
    """Run the simulator until SIGTERM/Ctrl-C (exit 1 if it cannot start)."""
    if ctx.invoked_subcommand is not None:
        return
    from csfabric.cloudstack.simulator import (
        merge_specs,
        parse_fault,
        parse_latency,
        parse_throttle,
    )

    try:
        if world not in WORLDS:
            raise ConfigError(f"unknown --world {world!r}; choose from {', '.join(WORLDS)}")
        specs = merge_specs(
            [parse_fault(s) for s in fault or ()]
            + [parse_latency(s) for s in latency or ()]
            + [parse_throttle(s) for s in throttle or ()]
        )
        secret = None
        if webhook_secret_file is not None:
            secret = webhook_secret_file.read_text().strip()
            register_secret(secret)
        options = _Run(
            host=host,
            port=port,
            world=world,
            seed=seed,
            time_scale=time_scale,
            state_dir=(state_dir or default_state_dir()).expanduser().resolve(),
            job_latency=job_latency,
            faults=specs,
            fault_seed=fault_seed,
            rabbitmq=rabbitmq,
            kafka=kafka,
            webhook=webhook,
            webhook_secret=secret,
            copy_latency=copy_latency,
        )
    except (CsfabricError, OSError) as exc:
        typer.echo(f"csfabric simulator: {redact(str(exc))}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(asyncio.run(_main(options)))


@simulator_app.command("keys")
def keys(
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
    endpoint: Annotated[
        str | None,
        typer.Option(help="Which simulator (default: dev.json's, or the only one known)."),
    ] = None,
    state_dir: Annotated[Path | None, typer.Option(help="Its state directory.")] = None,
    env: Annotated[
        str | None,
        typer.Option(help="Print `export CLOUDSTACK_*=…` for this user, for `eval`."),
    ] = None,
) -> None:
    """Print the API keys of the simulator's users: {"admin": {"apikey", "secretkey"}, …}."""
    directory = (state_dir or default_state_dir()).expanduser()
    try:
        url, found = read_keys(directory, endpoint)
    except ConfigError as exc:
        typer.echo(f"csfabric simulator keys: {exc}", err=True)
        raise typer.Exit(1) from None
    if env is not None:
        if env not in found:
            known = ", ".join(sorted(found))
            typer.echo(f"csfabric simulator keys: no user {env!r}; one of: {known}", err=True)
            raise typer.Exit(1)
        # The form `cs` and CloudMonkey read; for `eval "$(csfabric simulator keys --env admin)"`.
        pair = found[env]
        typer.echo(
            f"export CLOUDSTACK_ENDPOINT={shlex.quote(url)} "
            f"CLOUDSTACK_KEY={shlex.quote(pair['apikey'])} "
            f"CLOUDSTACK_SECRET={shlex.quote(pair['secretkey'])}"
        )
        return
    if as_json:
        typer.echo(json.dumps(found, indent=2, sort_keys=True))
        return
    for user, pair in found.items():
        typer.echo(f"{user:16} apikey={pair['apikey']}  secretkey={pair['secretkey']}")


def _normal(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/client/api") else f"{url}/client/api"


def read_keys(
    state_dir: Path, endpoint: str | None = None
) -> tuple[str, dict[str, dict[str, str]]]:
    """The endpoint and keys the simulator wrote to ``<state_dir>/simulator-keys.json``.

    The file maps each endpoint a simulator served from this state dir to its keys, so
    several simulators (other ports, other seeds) can share one directory.
    """
    path = state_dir / KEYS_FILE
    try:
        by_endpoint: dict[str, dict[str, dict[str, str]]] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"no simulator keys in {path} ({type(exc).__name__}); is it running "
                          "with this --state-dir?") from None  # fmt: skip
    wanted = endpoint or read_dev_file(state_dir).get("cloudstack_endpoint")
    if wanted is None and len(by_endpoint) == 1:
        url, found = next(iter(by_endpoint.items()))
        return _normal(url), found
    known = {_normal(url): found for url, found in by_endpoint.items()}
    if wanted is not None and _normal(wanted) in known:
        return _normal(wanted), known[_normal(wanted)]
    raise ConfigError(
        f"{'no keys for ' + wanted if wanted else 'several simulators'} in {path}; "
        f"pass --endpoint, one of: {', '.join(sorted(known)) or 'none'}"
    )


@dataclass(frozen=True)
class _Run:
    host: str
    port: int
    world: str
    seed: int
    time_scale: float | None
    state_dir: Path
    job_latency: float
    faults: list[dict[str, Any]]
    fault_seed: int | None
    rabbitmq: str | None
    kafka: str | None
    webhook: str | None
    webhook_secret: str | None
    copy_latency: float | None = None


def _clock_spec(time_scale: float | None) -> str:
    return scaled_spec(time_scale) if time_scale else os.environ.get("CSFABRIC_CLOCK") or "real"


def _sinks(run: _Run) -> list[EventSink]:
    from csfabric.cloudstack.simulator import Fanout, KafkaSink, RabbitSink, WebhookSink

    sinks: list[EventSink] = []
    if run.rabbitmq:
        sinks.append(RabbitSink(run.rabbitmq))
    if run.kafka:
        sinks.append(KafkaSink(run.kafka))
    if run.webhook:
        sinks.append(WebhookSink(run.webhook, run.webhook_secret))
    # Behind a Fanout, a feed that is down (the webhook receiver not yet up, say) is
    # retried in the background and never slows the API.
    return [Fanout(sinks)] if sinks else []


async def _main(run: _Run) -> int:
    from csfabric.cloudstack.simulator import FaultPlan, Simulator, World

    setup_logging("simulator", os.environ.get("CSFABRIC_LOG_LEVEL", "INFO"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    simulator: Simulator | None = None
    try:
        clock = parse_clock(_clock_spec(run.time_scale))
        world = World.demo(run.seed) if run.world == "demo" else World(run.seed)
        for pair in world.keys().values():
            register_secret(pair["secretkey"])  # a stray log line must not show them
        plan = FaultPlan(clock, seed=run.fault_seed)
        for spec in run.faults:
            plan.apply(spec)
        simulator = Simulator(
            world,
            clock=clock,
            sinks=_sinks(run),
            faults=plan,
            job_latency=run.job_latency,
            copy_latency=run.copy_latency,
            state_dir=run.state_dir,
        )
        url = await simulator.start(run.host, run.port)
        ready = {"endpoint": url, "clock": clock.spec, "world": run.world, "seed": run.seed}
        log.info("simulator ready", extra={**ready, "faults": run.faults})
        print(READY_PREFIX + json.dumps(ready, sort_keys=True), flush=True)
        # Started by `csfabric dev`, we get SIGTERM when it dies, even by SIGKILL (an orphan
        # would hold the port): csfabric.devstack._lifeline.
        await stop.wait()
        return 0
    except (CsfabricError, OSError) as exc:
        print(f"csfabric simulator: {redact(str(exc))}", file=sys.stderr, flush=True)
        return 1
    finally:
        if simulator is not None:
            await simulator.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


__all__ = ["DEFAULT_PORT", "KEYS_FILE", "READY_PREFIX", "read_keys", "simulator_app"]
