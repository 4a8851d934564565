"""``Clock.monotonic``: the deadline clock of leases, at the rate the clock's sleeps use."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from csfabric.kernel import RealClock, ScaledClock, SteppedClock


async def test_stepped_monotonic_moves_only_with_advance() -> None:
    clock = SteppedClock()
    start = clock.monotonic()
    await asyncio.sleep(0.01)
    assert clock.monotonic() == start
    await clock.advance(7.5)
    assert clock.monotonic() - start == 7.5


async def test_scaled_monotonic_runs_at_the_factor_and_ignores_the_epoch() -> None:
    # Two clocks far apart in `now()` (different epochs) agree on elapsed monotonic time.
    base = datetime.now(UTC)
    a = ScaledClock(base, 10)
    b = ScaledClock(base + timedelta(hours=1), 10)
    assert abs((a.now() - b.now()).total_seconds()) > 30_000
    a0, b0, real0 = a.monotonic(), b.monotonic(), time.monotonic()
    await a.sleep(2)  # 0.2 wall seconds
    elapsed_real = time.monotonic() - real0
    assert abs((a.monotonic() - a0) - elapsed_real * 10) < 0.05
    assert abs((a.monotonic() - a0) - (b.monotonic() - b0)) < 0.01
    assert a.monotonic() - a0 >= 2


def test_real_monotonic_is_time_monotonic() -> None:
    before = time.monotonic()
    value = RealClock().monotonic()
    assert before <= value <= time.monotonic()
