"""Fencing tokens and clock rules of :class:`Lease`, on a real NATS KV with stepped clocks.

Each step of time is explicit here, so the rules are checked to the second: the token is the
KV revision of the take and lasts the term; the fence refuses once the holder's own
monotonic deadline has passed (measured from when its request was sent) or once another
holder wrote; and wall clocks skewed by more than the TTL change nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import cast

import pytest
import pytest_asyncio
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import LEASE_BUCKET as BUCKET
from csfabric.kernel import Lease, LeaseLost, SteppedClock, TransientError
from csfabric.kernel.bus import Bus
from nats.js.kv import KeyValue

pytestmark = pytest.mark.integration

TTL = 15.0


@pytest_asyncio.fixture
async def kv(nats_server: NatsServerProcess) -> AsyncIterator[KeyValue]:
    bus = await Bus.connect(nats_server.url, service="fencetest", create_streams=False)
    try:
        yield await bus.key_value(BUCKET)
    finally:
        await bus.close()


class SlowAnswers:
    """The real bucket, but each write's answer arrives ``delay`` stepped seconds late."""

    def __init__(self, kv: KeyValue, clock: SteppedClock, delay: float) -> None:
        self.kv, self.clock, self.delay = kv, clock, delay

    async def get(self, key: str) -> KeyValue.Entry:
        return await self.kv.get(key)

    async def create(self, key: str, value: bytes) -> int:
        revision = await self.kv.create(key, value)
        await self.clock.advance(self.delay)
        return revision

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        revision = await self.kv.update(key, value, last=last)
        await self.clock.advance(self.delay)
        return revision


async def test_the_token_is_the_take_revision_for_the_whole_term(kv: KeyValue) -> None:
    clock = SteppedClock()
    a = Lease(kv, "term", ttl=TTL, holder="a", clock=clock)
    b = Lease(kv, "term", ttl=TTL, holder="b", clock=clock)
    assert a.token is None
    assert await a.acquire()
    first = a.token
    assert first == (await kv.get("term")).revision
    assert await a.fence() == first

    await clock.advance(5)
    assert await a.renew()
    assert (await kv.get("term")).revision > first  # renewed: a new revision ...
    assert a.token == first  # ... in the same term
    assert await a.fence() == first

    await a.release()
    assert a.token is None
    with pytest.raises(LeaseLost):
        await a.fence()
    assert await b.acquire()  # released: no need to wait out the TTL
    assert b.token is not None
    assert b.token > first


async def test_the_fence_refuses_at_the_holders_own_deadline(kv: KeyValue) -> None:
    clock = SteppedClock()
    a = Lease(kv, "deadline", ttl=TTL, holder="a", clock=clock)
    assert await a.acquire()
    await clock.advance(TTL * 2 / 3 - 1)
    assert await a.fence() == a.token
    await clock.advance(1)  # nobody took the lease, but our term is over by our clock
    assert not a.held
    with pytest.raises(LeaseLost) as refused:
        await a.fence()
    assert isinstance(refused.value, TransientError)
    assert (await kv.get("deadline")).revision is not None  # the entry is untouched


async def test_the_deadline_counts_from_the_request_not_the_answer(kv: KeyValue) -> None:
    clock = SteppedClock()
    slow = cast(KeyValue, SlowAnswers(kv, clock, delay=4))
    a = Lease(slow, "slow", ttl=TTL, holder="a", clock=clock)
    assert await a.acquire()  # sent at 0, answered at 4
    await clock.advance(TTL * 2 / 3 - 4 - 0.5)
    assert a.held
    await clock.advance(0.5)  # 10 s after the request: over, though only 6 s after the answer
    assert not a.held


async def test_the_fence_refuses_once_another_holder_wrote(kv: KeyValue) -> None:
    clock = SteppedClock()
    a = Lease(kv, "stolen", ttl=TTL, holder="a", clock=clock)
    assert await a.acquire()
    entry = await kv.get("stolen")
    await kv.update("stolen", b'{"holder": "operator"}', last=entry.revision)
    with pytest.raises(LeaseLost, match="operator"):
        await a.fence()
    assert not a.held


async def test_fenced_stops_the_work_when_the_term_ran_out_during_the_act(kv: KeyValue) -> None:
    clock = SteppedClock()
    a = Lease(kv, "act", ttl=TTL, holder="a", clock=clock)
    assert await a.acquire()
    acted: list[int] = []

    async def act() -> None:
        async with a.fenced() as token:
            acted.append(token)
            await clock.advance(TTL)  # the act took longer than the term had left

    with pytest.raises(LeaseLost):
        await act()
    assert acted == [(await kv.get("act")).revision]


@pytest.mark.parametrize("holder_ahead", [True, False], ids=["holder-ahead", "holder-behind"])
async def test_wall_clocks_skewed_beyond_the_ttl_change_nothing(
    kv: KeyValue, holder_ahead: bool
) -> None:
    skew = timedelta(seconds=TTL + 5)
    base = SteppedClock().now()
    holder_clock = SteppedClock(base + skew if holder_ahead else base)
    taker_clock = SteppedClock(base if holder_ahead else base + skew)
    holder = Lease(kv, "skew", ttl=TTL, holder="h", clock=holder_clock)
    taker = Lease(kv, "skew", ttl=TTL, holder="t", clock=taker_clock)

    async def second() -> None:
        await holder_clock.advance(1)
        await taker_clock.advance(1)

    assert await holder.acquire()
    for tick in range(1, 61):  # a minute of a live holder renewing every ttl/3
        assert not await taker.acquire(), f"taken from a live holder at +{tick - 1}s"
        await second()
        if tick % 5 == 0:
            assert await holder.renew()
    assert holder.held
    # The holder dies right after renewing at +60, which the taker sees at once: it gets
    # the lease exactly a TTL later, by its own clock.
    assert not await taker.acquire()
    took_at = None
    for tick in range(1, int(TTL) + 6):
        await second()
        if await taker.acquire():
            took_at = tick
            break
    assert took_at == TTL
    assert not holder.held
