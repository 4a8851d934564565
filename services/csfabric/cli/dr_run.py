"""Running a recovery plan for a drill: each step timed on the fabric clock, then cleaned up.

Order: every ``createVolume`` (from the DR copies) side by side, then per VM, VMs side by
side, ``deployVirtualMachine`` and one ``attachVolume`` per restored volume — as an operator
would run them, in parallel up to the client's concurrency cap.  The RTO is the fabric time
from the first call to the end of the last of these.  A failed step does not stop the
others (a drill reports everything it could not do), but an attach waits for its VM and
its volume.  Cleanup then
removes exactly what this drill made — VMs destroyed with ``expunge=true`` (which detaches
their data disks), then the volumes — including what a failed job left behind, because the
id comes with CloudStack's first answer, before the job is waited for.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from csfabric.cloudstack import CloudStackClient, JobResult
from csfabric.dr import DrillResult, DrillStep, RecoveryPlan, RedeployVm, RestoreVolume
from csfabric.kernel import CsfabricError, redact


@dataclass
class _Drill:
    client: CloudStackClient
    steps: list[DrillStep] = field(default_factory=list)
    volumes: dict[str, str] = field(default_factory=dict)  # source volume id → restored id
    made_volumes: list[str] = field(default_factory=list)
    made_vms: list[str] = field(default_factory=list)

    async def step(self, name: str, work: Callable[[], Awaitable[str]]) -> DrillStep:
        started = self.client.clock.now()
        try:
            detail, ok = await work(), True
        except CsfabricError as error:
            detail, ok = redact(str(error)), False
        finished = self.client.clock.now()
        return DrillStep(name=name, started=started, finished=finished, ok=ok, detail=detail)

    async def job(self, command: str, made: list[str] | None, **params: str) -> JobResult:
        """Submit, remember what CloudStack says it is creating, then wait for the job."""
        answer: dict[str, Any] = await self.client.call(command, **params)
        resource = answer.get("id")
        if made is not None and resource:
            made.append(str(resource))
        if not answer.get("jobid"):
            return JobResult(
                command=command, jobid=None, status="succeeded", result=answer, resource_id=resource
            )
        result = await self.client.wait_job(
            str(answer["jobid"]), command=command, resource_id=resource
        )
        return result.raise_for_status()


async def run_drill(
    client: CloudStackClient, plan: RecoveryPlan, *, target_rto_s: float, drill_id: str
) -> DrillResult:
    drill = _Drill(client)
    started = client.clock.now()
    if plan.blocked:
        reasons = "; ".join(f"{b.kind} {b.name}: {b.reason}" for b in plan.blocked)
        drill.steps.append(
            DrillStep(
                name="plan",
                started=started,
                finished=started,
                ok=False,
                detail=f"{len(plan.blocked)} not plannable: {reasons}",
            )
        )
    await _in_order(drill, [_restore(drill, vol) for vol in plan.volumes])
    chains = await asyncio.gather(*(_redeploy(drill, vm) for vm in plan.vms))
    for steps in chains:
        drill.steps.extend(steps)
    vms = sum(1 for steps in chains if steps and steps[0].ok)
    recovered = client.clock.now()
    restored_ok = len(drill.volumes)
    recovery_ok = all(s.ok for s in drill.steps)
    cleaned = await _clean_up(drill)
    measured = (recovered - started).total_seconds()
    return DrillResult(
        id=drill_id,
        zone=plan.zone_name,
        started=started,
        finished=client.clock.now(),
        target_rto_s=target_rto_s,
        measured_rto_s=measured,
        volumes_restored=restored_ok,
        vms_redeployed=vms,
        ok=recovery_ok and cleaned and measured <= target_rto_s,
        cleaned_up=cleaned,
        steps=drill.steps,
    )


async def _in_order(drill: _Drill, steps: list[Awaitable[DrillStep]]) -> None:
    """Run steps side by side (CloudStack runs jobs in parallel; the client caps how many
    are in flight), recorded in plan order."""
    drill.steps.extend(await asyncio.gather(*steps))


async def _restore(drill: _Drill, vol: RestoreVolume) -> DrillStep:
    async def work() -> str:
        result = await drill.job("createVolume", drill.made_volumes, **vol.params)
        made = str(result.resource_id or (result.payload or {}).get("id"))
        drill.volumes[vol.volume_id] = made
        return f"volume {made} from snapshot {vol.snapshot_id}"

    return await drill.step(f"createVolume {vol.params['name']}", work)


async def _redeploy(drill: _Drill, vm: RedeployVm) -> list[DrillStep]:
    """Deploy, then attach each restored volume (an attach waits for its VM)."""
    made: list[str] = []

    async def deploy() -> str:
        result = await drill.job("deployVirtualMachine", drill.made_vms, **vm.params)
        made.append(str(result.resource_id or (result.payload or {}).get("id")))
        return f"vm {made[0]}"

    steps = [await drill.step(f"deployVirtualMachine {vm.params['name']}", deploy)]
    if not steps[0].ok:
        return steps
    for source in vm.attach:
        restored = drill.volumes.get(source)
        if restored is None:
            continue  # its createVolume step failed and says so

        async def attach(volume: str = restored) -> str:
            await drill.job("attachVolume", None, id=volume, virtualmachineid=made[0])
            return f"volume {volume} on vm {made[0]}"

        steps.append(await drill.step(f"attachVolume {restored} → {vm.params['name']}", attach))
    return steps


async def _clean_up(drill: _Drill) -> bool:
    ok = True
    for vm in drill.made_vms:

        async def destroy(vm: str = vm) -> str:
            await drill.job("destroyVirtualMachine", None, id=vm, expunge="true")
            return f"vm {vm} expunged"

        drill.steps.append(await drill.step(f"cleanup destroyVirtualMachine {vm}", destroy))
        ok &= drill.steps[-1].ok
    for volume in drill.made_volumes:

        async def delete(volume: str = volume) -> str:
            await drill.client.call("deleteVolume", id=volume)
            return f"volume {volume} deleted"

        drill.steps.append(await drill.step(f"cleanup deleteVolume {volume}", delete))
        ok &= drill.steps[-1].ok
    return ok


def drill_id(zone: str, at: datetime) -> str:
    # The audit record's id is derived from this: two drills in one second must not collide.
    return f"drill-{zone}-{at.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


__all__ = ["drill_id", "run_drill"]
