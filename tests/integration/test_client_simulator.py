"""The client against the real simulator over a loopback socket.

Checks the two sides agree on the wire: the simulator verifies the client's v3 signatures,
the typed models parse the simulator's shapes, async jobs are awaited, and injected
faults are retried (530) or refused (431) as the client promises.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from csfabric.cloudstack import (
    CloudStackApiError,
    CloudStackClient,
    CloudStackSettings,
    CloudStackTransientError,
    Project,
    VirtualMachine,
    Volume,
    Zone,
)
from csfabric.cloudstack.simulator import ApiError, FaultPlan, Simulator, World
from csfabric.cloudstack.simulator._registry import JobPlan
from csfabric.kernel import RealClock

from tests.servers import free_port

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def simulator(tmp_path: Any) -> AsyncIterator[Simulator]:
    clock = RealClock()
    sim = Simulator(
        World.demo(7),
        clock=clock,
        faults=FaultPlan(clock, seed=1),
        job_latency=0.05,
        state_dir=tmp_path,
    )
    await sim.start("127.0.0.1", free_port())
    try:
        yield sim
    finally:
        await sim.stop()


def client_for(sim: Simulator, account: str = "admin", **overrides: Any) -> CloudStackClient:
    keys = sim.keys()[account]
    values: dict[str, Any] = {
        "endpoint": sim.url,
        "key": keys["apikey"],
        "secret": keys["secretkey"],
        "poll_interval": 0.02,
        "retry_backoff": 0.001,
        "rate_limit_per_second": None,
        **overrides,
    }
    return CloudStackClient(CloudStackSettings(**values), clock=sim.clock)


async def test_lists_parse_into_models(simulator: Simulator) -> None:
    async with client_for(simulator) as client:
        zones = await client.list_zones()
        volumes = await client.list_volumes(listall=True)
        vms = await client.list_virtual_machines(listall=True)
        projects = await client.list_projects(listall=True)
    assert sorted(z.name for z in zones) == ["zone-london", "zone-manchester"]
    assert all(isinstance(z, Zone) for z in zones)
    assert volumes
    assert all(isinstance(v, Volume) for v in volumes)
    assert vms
    assert all(isinstance(v, VirtualMachine) for v in vms)
    assert {p.name for p in projects} >= {"project-alpha", "project-beta"}
    assert all(isinstance(p, Project) for p in projects)


async def test_paging_matches_one_big_page(simulator: Simulator) -> None:
    async with client_for(simulator) as client:
        whole = await client.list("listVolumes", listall=True)
        async with client_for(simulator, page_size=2) as paged_client:
            paged = await paged_client.list("listVolumes", listall=True)
    assert len(whole) > 2
    assert [v["id"] for v in paged] == [v["id"] for v in whole]


async def test_deploy_vm_and_wait_for_its_job(simulator: Simulator) -> None:
    world = simulator.world
    async with client_for(simulator) as client:
        [london] = await client.list_zones(name="zone-london")
        result = await client.job(
            "deployVirtualMachine",
            zoneid=london.id,
            serviceofferingid=world.service_offering_id,
            templateid=world.template_id,
            name="client-test-vm",
        )
        assert result.ok, result.error
        vm = VirtualMachine.model_validate(result.payload)
        assert vm.id == result.resource_id
        assert vm.zoneid == london.id
        [listed] = await client.list_virtual_machines(id=vm.id)
    assert listed.name == "client-test-vm"


async def test_failed_job_returns_its_error(
    simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The demo world has no command whose job fails on its own, so make the next job's
    # work fail the way CloudStack's do (jobstatus 2, jobresult errorcode/errortext).
    submit = simulator.jobs.submit

    async def failing_submit(cmd: Any, call: Any, plan: JobPlan) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            raise ApiError(530, "Failed to stop VM", 4250)

        return await submit(cmd, call, dataclasses.replace(plan, run=run))

    monkeypatch.setattr(simulator.jobs, "submit", failing_submit)
    async with client_for(simulator) as client:
        [vm, *_] = await client.list_virtual_machines(listall=True)
        result = await client.job("stopVirtualMachine", id=vm.id)
    assert result.status == "failed"
    assert result.error is not None
    assert (result.error.errorcode, result.error.errortext) == (530, "Failed to stop VM")
    with pytest.raises(CloudStackTransientError):
        result.raise_for_status()


async def test_refused_job_command_raises_at_once(simulator: Simulator) -> None:
    async with client_for(simulator) as client:
        with pytest.raises(CloudStackApiError) as caught:
            await client.job("stopVirtualMachine", id="00000000-0000-0000-0000-000000000000")
    # ParamProcessWorker refuses an id naming no VM before the command runs.
    assert caught.value.errorcode == 431
    assert caught.value.cserrorcode == 9999
    assert (
        "Invalid parameter id value=00000000-0000-0000-0000-000000000000 due to incorrect long"
        in caught.value.errortext
    )


async def test_injected_530s_are_retried(simulator: Simulator) -> None:
    assert simulator.faults is not None
    simulator.faults.set("listZones", error_rate=0.5, errorcode=530, seed=3)
    async with client_for(simulator, max_retries=8) as client:
        for _ in range(10):
            assert len(await client.list_zones()) == 2
    assert simulator.faults.injected.get("listZones:530", 0) > 0


async def test_injected_431_is_permanent(simulator: Simulator) -> None:
    assert simulator.faults is not None
    simulator.faults.set("listVolumes", error_rate=1.0, errorcode=431)
    async with client_for(simulator) as client:
        with pytest.raises(CloudStackApiError) as caught:
            await client.list_volumes()
    assert caught.value.errorcode == 431
    assert simulator.faults.injected["listVolumes:431"] == 1


async def test_wrong_secret_is_401(simulator: Simulator) -> None:
    keys = simulator.keys()["admin"]
    settings = CloudStackSettings(
        endpoint=simulator.url, key=keys["apikey"], secret="not-the-secret"
    )
    async with CloudStackClient(settings) as client:
        with pytest.raises(CloudStackApiError) as caught:
            await client.call("listZones")
    assert caught.value.errorcode == 401


async def test_injected_latency_times_out_and_is_retried(simulator: Simulator) -> None:
    assert simulator.faults is not None
    simulator.faults.set("listZones", latency=1.0)
    loop = asyncio.get_running_loop()
    # The fault goes away after the first attempt has timed out, as a stall would.
    loop.call_later(0.3, simulator.faults.clear)
    async with client_for(simulator, timeout=0.2, retry_backoff=0.2) as client:
        assert len(await client.list_zones()) == 2


async def test_throttling_429_is_retried(simulator: Simulator) -> None:
    assert simulator.faults is not None
    simulator.faults.set("listZones", throttle_per_second=20.0)
    async with client_for(simulator, retry_backoff=0.05, max_retries=6) as client:
        answers = await asyncio.gather(*(client.call("listZones") for _ in range(30)))
    assert all(answer["count"] == 2 for answer in answers)
    assert simulator.faults.injected.get("listZones:429", 0) > 0
