"""The simulator's fault plan: pure, over a stepped clock and a seeded RNG."""

from __future__ import annotations

import asyncio

import pytest
from csfabric.cloudstack.simulator import (
    ApiError,
    FaultPlan,
    merge_specs,
    parse_fault,
    parse_latency,
    parse_throttle,
)
from csfabric.kernel import ConfigError, SteppedClock


async def _failures(plan: FaultPlan, command: str, calls: int) -> list[int]:
    codes = []
    for _ in range(calls):
        try:
            await plan.before(command)
        except ApiError as exc:
            codes.append(exc.errorcode)
    return codes


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9, 1.0])
async def test_observed_error_rate_matches_the_configured_one(rate: float) -> None:
    plan = FaultPlan(SteppedClock(), seed=7)
    plan.set("listZones", error_rate=rate, errorcode=530)
    codes = await _failures(plan, "listZones", 4000)
    assert abs(len(codes) / 4000 - rate) < 0.03
    assert set(codes) <= {530}
    assert plan.injected.get("listZones:530", 0) == len(codes)


async def test_same_seed_same_failures_and_other_commands_untouched() -> None:
    runs = []
    for _ in range(2):
        plan = FaultPlan(SteppedClock(), seed=11)
        plan.set("listZones", error_rate=0.3)
        outcomes = []
        for _ in range(200):
            try:
                await plan.before("listZones")
                outcomes.append(True)
            except ApiError:
                outcomes.append(False)
        runs.append(outcomes)
        assert await _failures(plan, "listVolumes", 100) == []
    assert runs[0] == runs[1]


async def test_error_has_cloudstack_code_shape_and_case_insensitive_command() -> None:
    plan = FaultPlan(SteppedClock())
    plan.set("LISTZONES", error_rate=1.0, errorcode=533)
    with pytest.raises(ApiError) as caught:
        await plan.before("listZones")
    assert caught.value.errorcode == 533
    assert caught.value.cserrorcode == 4325
    assert set(caught.value.body()) == {"uuidList", "errorcode", "cserrorcode", "errortext"}


async def test_wildcard_applies_unless_a_command_has_its_own() -> None:
    plan = FaultPlan(SteppedClock())
    plan.set("*", error_rate=1.0, errorcode=530)
    plan.set("listZones", error_rate=0.0)
    assert await _failures(plan, "listVolumes", 3) == [530, 530, 530]
    assert await _failures(plan, "listZones", 3) == []
    assert plan.clear("*") == 1
    assert await _failures(plan, "listVolumes", 3) == []
    assert plan.clear() == 1
    assert plan.faults == []


async def test_latency_sleeps_through_the_clock() -> None:
    clock = SteppedClock()
    plan = FaultPlan(clock)
    plan.set("deployVirtualMachine", latency=2.5)
    call = asyncio.create_task(plan.before("deployVirtualMachine"))
    await asyncio.sleep(0)
    assert clock.sleepers == 1
    await clock.advance(2.4)
    assert not call.done()
    await clock.advance(0.1)
    await asyncio.sleep(0)
    assert call.done()
    call.result()


async def test_throttle_is_a_token_bucket_over_fabric_time() -> None:
    clock = SteppedClock()
    plan = FaultPlan(clock)
    plan.set("listVolumes", throttle_per_second=2)
    assert await _failures(plan, "listVolumes", 2) == []
    with pytest.raises(ApiError) as caught:
        await plan.before("listVolumes")
    assert caught.value.errorcode == 429
    assert "api limit" in caught.value.errortext
    await clock.advance(0.5)
    assert await _failures(plan, "listVolumes", 2) == [429]  # one token back after 0.5 s
    await clock.advance(10)
    assert await _failures(plan, "listVolumes", 3) == [429]  # the burst is capped at the rate


def test_apply_and_bad_values() -> None:
    plan = FaultPlan(SteppedClock())
    fault = plan.apply({"command": "listZones", "error_rate": "0.5", "errorcode": 535})
    assert fault.as_dict() == {
        "command": "listZones",
        "error_rate": 0.5,
        "errorcode": 535,
        "latency": 0.0,
        "throttle_per_second": None,
    }
    for bad in (
        {"command": "x", "error_rate": 2},
        {"command": "x", "errorcode": 200},
        {"command": "x", "latency": -1},
        {"command": "x", "throttle_per_second": 0},
        {"command": "x", "bogus": 1},
        {"command": "x", "error_rate": "lots"},
    ):
        with pytest.raises(ConfigError):
            plan.apply(bad)


def test_cli_specs() -> None:
    assert parse_fault("listZones:0.5:530") == {
        "command": "listZones",
        "error_rate": 0.5,
        "errorcode": 530,
    }
    assert parse_fault("*:1") == {"command": "*", "error_rate": 1.0}
    assert parse_latency("deployVirtualMachine:2") == {
        "command": "deployVirtualMachine",
        "latency": 2.0,
    }
    assert parse_throttle("*:50") == {"command": "*", "throttle_per_second": 50.0}
    for bad in ("listZones", "listZones:x", ":1", "a:1:b:c"):
        with pytest.raises(ConfigError):
            parse_fault(bad)
    with pytest.raises(ConfigError):
        parse_latency("listZones:slow")
    merged = merge_specs([parse_fault("listZones:0.2"), parse_latency("LISTZONES:1")])
    assert merged == [{"command": "LISTZONES", "error_rate": 0.2, "latency": 1.0}]
