"""The one source of time, set by ``CSFABRIC_CLOCK``.

Values: ``real`` | ``scaled:<epoch>:<factor>`` | ``stepped``.

Every sleep, timeout, lease TTL and poll interval goes through a :class:`Clock`, so a
15-minute schedule can be demonstrated in seconds (scaled) and 30 days of inactivity can
be tested in milliseconds (stepped).

* ``real`` — wall time.
* ``scaled:<epoch>:<factor>`` — fabric time equals wall time at ``<epoch>`` (ISO 8601 or
  Unix seconds) and runs ``factor`` times faster after it.  Because the epoch is shared,
  every process of ``csfabric dev`` computes the same ``now()`` without talking.
* ``stepped`` — time stands still until a test calls :meth:`SteppedClock.advance`; sleepers
  wake in deadline order (ties in the order they went to sleep), each exactly once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from csfabric.kernel.errors import ConfigError

T = TypeVar("T")


class Clock(ABC):
    """Fabric time.  ``now()`` is timezone-aware UTC."""

    spec: str

    @abstractmethod
    def now(self) -> datetime: ...

    @abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of fabric time."""

    def monotonic(self) -> float:
        """Fabric seconds on a clock that never jumps (deadlines, leases); only differences count.

        Unlike :meth:`now` it ignores wall-clock steps and skew between machines, and it runs
        at the rate :meth:`sleep` uses, so a deadline and a sleep towards it agree.
        """
        return time.monotonic()

    def to_real(self, seconds: float) -> float:
        """Wall seconds that ``seconds`` of fabric time take (for server-side TTLs)."""
        return seconds

    async def sleep_until(self, when: datetime) -> None:
        await self.sleep(max(0.0, (when - self.now()).total_seconds()))

    async def wait_for(self, awaitable: Awaitable[T], timeout: float) -> T:  # noqa: ASYNC109
        """Like :func:`asyncio.wait_for`, but the timeout is fabric time."""
        task = asyncio.ensure_future(awaitable)
        timer = asyncio.ensure_future(self.sleep(timeout))
        try:
            done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        finally:
            timer.cancel()
        if task in done:
            return task.result()
        task.cancel()
        raise TimeoutError(f"timed out after {timeout:g}s of {self.spec} time")


class RealClock(Clock):
    spec = "real"

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock(Clock):
    def __init__(self, epoch: datetime, factor: float) -> None:
        if factor <= 0:
            raise ConfigError(f"clock factor must be > 0, got {factor:g}")
        self.epoch = epoch.astimezone(UTC)
        self.factor = factor
        self.spec = f"scaled:{self.epoch.isoformat()}:{factor:g}"

    def now(self) -> datetime:
        elapsed = time.time() - self.epoch.timestamp()
        return self.epoch + timedelta(seconds=elapsed * self.factor)

    def monotonic(self) -> float:
        return time.monotonic() * self.factor

    def to_real(self, seconds: float) -> float:
        return seconds / self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)


class SteppedClock(Clock):
    """Virtual time for tests; nothing wakes until :meth:`advance` is called."""

    spec = "stepped"

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or datetime(2026, 1, 1, tzinfo=UTC)).astimezone(UTC)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._now.timestamp()  # virtual time only moves forward

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._now + timedelta(seconds=seconds)
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    @property
    def next_deadline(self) -> datetime | None:
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    @property
    def sleepers(self) -> int:
        self._drop_cancelled()
        return len(self._sleepers)

    async def advance(self, seconds: float | timedelta) -> int:
        """Move time forward, waking every sleeper due on the way, in order; returns how many."""
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        target = self._now + delta
        woken = 0
        while (deadline := self.next_deadline) is not None and deadline <= target:
            _, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            future.set_result(None)
            woken += 1
            # Let the woken task run (and perhaps sleep again) before time moves on.
            for _ in range(5):
                await asyncio.sleep(0)
        self._now = target
        return woken

    async def advance_to_next(self) -> datetime | None:
        """Jump to the earliest deadline and wake what is due then."""
        deadline = self.next_deadline
        if deadline is not None:
            await self.advance(deadline - self._now)
        return deadline

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)


def parse_clock(spec: str) -> Clock:
    """Build the clock named by a ``CSFABRIC_CLOCK`` value; a bad value gets a precise error."""
    text = spec.strip()
    if text in ("", "real"):
        return RealClock()
    if text == "stepped":
        return SteppedClock()
    if text.startswith("scaled:"):
        body = text[len("scaled:") :]
        epoch_text, sep, factor_text = body.rpartition(":")
        if not sep:
            raise ConfigError(f"CSFABRIC_CLOCK {spec!r}: expected scaled:<epoch>:<factor>")
        try:
            factor = float(factor_text)
        except ValueError:
            raise ConfigError(
                f"CSFABRIC_CLOCK {spec!r}: factor {factor_text!r} is not a number"
            ) from None
        return ScaledClock(_parse_epoch(epoch_text, spec), factor)
    raise ConfigError(f"CSFABRIC_CLOCK {spec!r}: expected real, stepped or scaled:<epoch>:<factor>")


def _parse_epoch(text: str, spec: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"CSFABRIC_CLOCK {spec!r}: epoch {text!r} is neither ISO 8601 nor Unix seconds"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def scaled_spec(factor: float, epoch: datetime | None = None) -> str:
    """The ``CSFABRIC_CLOCK`` value ``csfabric dev --time-scale`` hands to every child."""
    start = (epoch or datetime.now(UTC)).astimezone(UTC)
    return f"scaled:{start.timestamp():.6f}:{factor:g}"


__all__ = ["Clock", "RealClock", "ScaledClock", "SteppedClock", "parse_clock", "scaled_spec"]
