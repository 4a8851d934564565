"""``csfabric dr plan --zone Z [--policy P] [--file PATH] [--json]``: the recovery plan.

Reads the SnapshotPolicies that copy to ``Z`` and the cloud's listings, and prints the steps
that would bring every covered volume (from its newest complete copy in ``Z``) and the VMs
that owned them back in ``Z`` — and, for anything that cannot be planned, why.  It only
reads; ``csfabric dr drill`` runs the steps.  Exit 0 when every volume and VM is planned,
3 when some are blocked (the plan is still printed), 1 when the cloud or NATS cannot be
reached or a policy is unknown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from csfabric.cli._common import JsonFlag
from csfabric.dr import RecoveryPlan

ZoneOpt = Annotated[str, typer.Option("--zone", help="The DR zone to recover into (name or id).")]
PolicyOpt = Annotated[str | None, typer.Option("--policy", help="Only this SnapshotPolicy.")]
PoliciesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--file", "--policies", help="Read policies from YAML files/dirs instead of the store."
    ),
]
BLOCKED_EXIT = 3


def plan_json(plan: RecoveryPlan) -> dict[str, Any]:
    out = dataclasses.asdict(plan)
    out["complete"] = plan.complete
    for step in out["volumes"]:
        step["command"] = "createVolume"
    for step in out["vms"]:
        step["command"] = "deployVirtualMachine"
    return json.loads(json.dumps(out, default=lambda v: v.isoformat()))  # type: ignore[no-any-return]


def render(plan: RecoveryPlan) -> str:
    lines = [
        f"Recovery plan into {plan.zone_name} (policies: {', '.join(plan.policies) or 'none'})"
    ]
    for i, vol in enumerate(plan.volumes, 1):
        age = vol.data_age_s / 60
        lines.append(
            f"{i:>3}. createVolume {vol.params['name']} from snapshot {vol.snapshot_id} "
            f"({vol.volume_name}, policy {vol.policy}, copy {age:.1f} min old)"
        )
    first = len(plan.volumes)
    for i, vm in enumerate(plan.vms, first + 1):
        p = vm.params
        net = p.get("networkids", "the account's default network")
        lines.append(
            f"{i:>3}. deployVirtualMachine {p['name']} (offering {p['serviceofferingid']}, "
            f"template {p['templateid']}, network {net}), then attach {len(vm.attach)} volume(s)"
        )
        lines.extend(f"       note: {note}" for note in vm.notes)
    if not plan.volumes and not plan.vms:
        lines.append("  nothing to recover: no covered volume has a copy in this zone")
    for b in plan.blocked:
        lines.append(f"  BLOCKED {b.kind} {b.name} ({b.id}): {b.reason}")
    lines.extend(f"  note: {note}" for note in plan.notes)
    return "\n".join(lines)


async def make_plan(zone: str, policy: str | None, paths: list[Path]) -> RecoveryPlan:
    from csfabric.cli.dr_cloud import open_client, read_inventory, read_policies
    from csfabric.dr import plan
    from csfabric.kernel import FabricSettings

    settings = FabricSettings()
    policies = await read_policies(paths, policy, settings)
    async with open_client(settings) as client:
        inventory = await read_inventory(client, zone)
        return plan(policies, inventory, client.clock.now())


def fail(error: Exception) -> typer.Exit:
    from csfabric.kernel import redact

    typer.echo(f"csfabric: {redact(str(error))}", err=True)
    return typer.Exit(1)


def plan_command(
    zone: ZoneOpt,
    policy: PolicyOpt = None,
    policies: PoliciesOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """The recovery plan into a DR zone: volumes from their newest DR copies, VMs redeployed."""
    from csfabric.kernel import CsfabricError

    try:
        result = asyncio.run(make_plan(zone, policy, policies or []))
    except (CsfabricError, OSError) as error:
        raise fail(error) from None
    typer.echo(json.dumps(plan_json(result), indent=2) if as_json else render(result))
    raise typer.Exit(0 if result.complete else BLOCKED_EXIT)


def register(dr_app: typer.Typer) -> None:
    dr_app.command("plan")(plan_command)


__all__ = ["make_plan", "plan_json", "register", "render"]
