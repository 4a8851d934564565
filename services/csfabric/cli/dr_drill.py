"""``csfabric dr drill --zone Z [--target 1h] [--yes-real-cloud]``: run the plan, time it, undo it.

The plan of ``csfabric dr plan`` is run against the cloud (:mod:`csfabric.cli.dr_run`):
volumes restored from their DR copies, VMs redeployed, volumes attached, each step timed on
the fabric clock; the measured RTO is compared with ``--target``, then everything the drill
made is destroyed.  The :class:`~csfabric.dr.DrillResult` is printed, and recorded as an
audit record (decision ``dr-drill`` on ``csfabric.audit.dr``) when NATS is configured
(``CSFABRIC_NATS_URL`` or a running ``csfabric dev``); when that fails the result is
still printed and the exit status is 1.

It creates resources, so it refuses any endpoint that is not a simulator this state
directory knows (``simulator-keys.json``, written by ``csfabric simulator`` and ``csfabric
dev``) unless ``--yes-real-cloud`` is given.  Exit 0 when every step worked and the RTO is
within the target, 4 when a step failed or the RTO is over, 1 when it could not start.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from csfabric.cli._common import JsonFlag
from csfabric.cli.dr_plan import PoliciesOpt, PolicyOpt, ZoneOpt, fail
from csfabric.dr import DrillResult

if TYPE_CHECKING:
    from csfabric.kernel.bus import Bus

DRILL_FAILED_EXIT = 4


class RecordFailed(str):
    """Why the drill's audit record could not be written."""


DR_SERVICE = "dr"  # audit records on csfabric.audit.dr


def is_simulator(endpoint: str, state_dir: Path) -> bool:
    from csfabric.cli.simulator import read_keys
    from csfabric.kernel import ConfigError

    try:
        read_keys(state_dir, endpoint)
    except ConfigError:
        return False
    return True


def nats_configured(state_dir: Path) -> bool:
    from csfabric.kernel import read_dev_file

    return bool(os.environ.get("CSFABRIC_NATS_URL") or read_dev_file(state_dir).get("nats_url"))


async def record_on(bus: Bus, result: DrillResult) -> str:
    """The drill's audit record, on ``csfabric.audit.<bus.service>``; returns its id."""
    from csfabric.dr import DECISION_DRILL
    from csfabric.kernel import Auditor

    audit = await Auditor(bus).emit(
        action_key=f"dr-drill:{result.id}",
        decision=DECISION_DRILL,
        reason=summary(result),
        action="dr drill",
        outcome="success" if result.ok else "failure",
        evidence=result.model_dump(mode="json"),
    )
    return audit.id


async def record(result: DrillResult) -> str:
    """:func:`record_on` a bus of service ``dr`` on the configured NATS."""
    from csfabric.devstack import connect_once
    from csfabric.kernel import FabricSettings, StreamLimits, parse_clock
    from csfabric.kernel.bus import Bus, ensure_streams

    settings = FabricSettings()
    nc = await connect_once(settings.nats_url)
    bus = Bus(nc, service=DR_SERVICE, clock=parse_clock(settings.clock))
    try:
        await bus.retry(lambda: ensure_streams(bus.js, StreamLimits()), what="streams")
        return await record_on(bus, result)
    finally:
        await bus.close()


def summary(result: DrillResult) -> str:
    failed = [s.name for s in result.steps if not s.ok]
    verdict = "within" if result.measured_rto_s <= result.target_rto_s else "OVER"
    text = (
        f"drill into {result.zone}: RTO {result.measured_rto_s:.0f}s {verdict} the target "
        f"{result.target_rto_s:.0f}s; {result.volumes_restored} volume(s) restored, "
        f"{result.vms_redeployed} VM(s) redeployed; cleaned up: "
        f"{'yes' if result.cleaned_up else 'NO'}"
    )
    return text + (f"; failed: {', '.join(failed)}" if failed else "")


async def drill(
    zone: str, policy: str | None, paths: list[Path], target_s: float, real_cloud: bool
) -> tuple[DrillResult, str | RecordFailed | None]:
    from csfabric.cli.dr_cloud import open_client, read_inventory, read_policies
    from csfabric.cli.dr_run import drill_id, run_drill
    from csfabric.dr import plan
    from csfabric.kernel import ConfigError, CsfabricError, FabricSettings, redact

    settings = FabricSettings()
    policies = await read_policies(paths, policy, settings)
    async with open_client(settings) as client:
        if not real_cloud and not is_simulator(client.endpoint, settings.state_dir):
            raise ConfigError(
                f"{client.endpoint} is not a simulator known in {settings.state_dir}: a drill "
                "creates VMs and volumes there; pass --yes-real-cloud to run it anyway"
            )
        recovery = plan(policies, await read_inventory(client, zone), client.clock.now())
        result = await run_drill(
            client,
            recovery,
            target_rto_s=target_s,
            drill_id=drill_id(recovery.zone_name, client.clock.now()),
        )
    if not nats_configured(settings.state_dir):
        return result, None
    try:
        return result, await record(result)
    except (CsfabricError, OSError) as error:
        # The drill ran and was cleaned up: its result is still printed, and the failure to
        # record it is an error of its own (an unrecorded drill is no evidence).
        return result, RecordFailed(redact(str(error)))


def drill_command(
    zone: ZoneOpt,
    target: Annotated[
        str, typer.Option("--target", help="The RTO to meet (1h, 45m, PT1H).")
    ] = "1h",
    policy: PolicyOpt = None,
    policies: PoliciesOpt = None,
    yes_real_cloud: Annotated[
        bool, typer.Option("--yes-real-cloud", help="Allow a cloud that is not the simulator.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Run the recovery plan, report the measured RTO against the target, clean up."""
    from csfabric.kernel import CsfabricError, parse_duration

    try:
        target_s = parse_duration(target).total_seconds()
        result, recorded = asyncio.run(
            drill(zone, policy, policies or [], target_s, yes_real_cloud)
        )
    except (CsfabricError, OSError, ValueError) as error:
        raise fail(error) from None
    failed = recorded if isinstance(recorded, RecordFailed) else None
    audit_id = None if failed else recorded
    if as_json:
        typer.echo(json.dumps(result.model_dump(mode="json") | {"audit_id": audit_id}, indent=2))
    else:
        for step in result.steps:
            took = (step.finished - step.started).total_seconds()
            mark = "ok " if step.ok else "FAIL"
            typer.echo(f"  {mark} {took:8.1f}s  {step.name}  {step.detail}")
        typer.echo(summary(result))
        if audit_id:
            typer.echo(f"recorded: audit {audit_id}")
        else:
            typer.echo(
                "recorded: NO (see below)" if failed else "recorded: no (no NATS configured)"
            )
    if failed:
        typer.echo(f"csfabric: the drill's audit record was not written: {failed}", err=True)
        raise typer.Exit(1)
    raise typer.Exit(0 if result.ok else DRILL_FAILED_EXIT)


def register(dr_app: typer.Typer) -> None:
    dr_app.command("drill")(drill_command)


__all__ = ["DR_SERVICE", "drill", "is_simulator", "record", "record_on", "register", "summary"]
