"""The clock contract: stepped time wakes every sleeper once, in deadline order."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from csfabric.kernel import (
    ConfigError,
    RealClock,
    ScaledClock,
    SteppedClock,
    parse_clock,
    scaled_spec,
)


async def test_thirty_days_through_many_sleepers_wake_once_in_order() -> None:
    clock = SteppedClock()
    start = clock.now()
    woke: list[tuple[int, datetime]] = []

    async def sleeper(index: int, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((index, clock.now()))

    # 500 sleepers spread over 30 days, registered in a scrambled order.
    durations = {i: ((i * 7919) % 500 + 1) * (30 * 86400 / 500) for i in range(500)}
    tasks = [asyncio.create_task(sleeper(i, d)) for i, d in durations.items()]
    await asyncio.sleep(0)
    assert clock.sleepers == 500

    woken = await clock.advance(timedelta(days=30))
    await asyncio.gather(*tasks)

    assert woken == 500
    assert sorted(i for i, _ in woke) == list(range(500))  # each exactly once
    assert [t for _, t in woke] == sorted(t for _, t in woke)  # in deadline order
    for index, when in woke:
        assert when == start + timedelta(seconds=durations[index])
    assert clock.now() == start + timedelta(days=30)


async def test_nothing_wakes_before_its_deadline() -> None:
    clock = SteppedClock()
    done = asyncio.Event()

    async def sleeper() -> None:
        await clock.sleep(60)
        done.set()

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    assert await clock.advance(59.999) == 0
    assert not done.is_set()
    assert await clock.advance(0.001) == 1
    await task
    assert done.is_set()


async def test_a_periodic_sleeper_ticks_once_per_period_over_a_month() -> None:
    clock = SteppedClock()
    ticks: list[datetime] = []

    async def every_15_minutes() -> None:
        while True:
            await clock.sleep(900)
            ticks.append(clock.now())

    task = asyncio.create_task(every_15_minutes())
    await asyncio.sleep(0)
    await clock.advance(timedelta(days=30))
    task.cancel()
    assert len(ticks) == 30 * 24 * 4
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(ticks))


async def test_advance_to_next_jumps_to_earliest_deadline() -> None:
    clock = SteppedClock()
    start = clock.now()
    tasks = [asyncio.create_task(clock.sleep(s)) for s in (30, 10, 20)]
    await asyncio.sleep(0)
    assert await clock.advance_to_next() == start + timedelta(seconds=10)
    assert clock.sleepers == 2
    for task in tasks:
        task.cancel()


async def test_wait_for_times_out_in_fabric_time() -> None:
    clock = SteppedClock()
    never = asyncio.get_running_loop().create_future()
    waiter = asyncio.create_task(clock.wait_for(never, timeout=3600))
    while clock.sleepers == 0:
        await asyncio.sleep(0)
    await clock.advance(3600)
    with pytest.raises(TimeoutError, match="3600s"):
        await waiter


async def test_wait_for_returns_the_result() -> None:
    clock = RealClock()

    async def answer() -> int:
        return 42

    assert await clock.wait_for(answer(), timeout=5) == 42


def test_scaled_clock_runs_faster_from_a_shared_epoch() -> None:
    epoch = datetime.now(UTC) - timedelta(seconds=10)
    clock = ScaledClock(epoch, 60)
    elapsed = clock.now() - epoch
    assert timedelta(minutes=9, seconds=59) < elapsed < timedelta(minutes=11)
    assert clock.to_real(60) == pytest.approx(1.0)


def test_two_processes_parsing_the_same_spec_agree() -> None:
    spec = scaled_spec(100)
    first, second = parse_clock(spec), parse_clock(spec)
    assert abs((first.now() - second.now()).total_seconds()) < 1


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ("real", RealClock),
        ("", RealClock),
        ("stepped", SteppedClock),
        ("scaled:2026-01-01T00:00:00+00:00:60", ScaledClock),
        ("scaled:1767225600:2.5", ScaledClock),
    ],
)
def test_parse_clock(spec: str, kind: type) -> None:
    assert isinstance(parse_clock(spec), kind)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fast", "expected real, stepped or scaled"),
        ("scaled:60", "expected scaled:<epoch>:<factor>"),
        ("scaled:yesterday:60", "neither ISO 8601 nor Unix seconds"),
        ("scaled:2026-01-01:x", "not a number"),
        ("scaled:1767225600:0", "must be > 0"),
    ],
)
def test_bad_clock_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_clock(spec)
