"""The keep-alive touches each held message once per interval, and only while it is held."""

from __future__ import annotations

from typing import Any, cast

from csfabric.kernel.bus._keepalive import KeepAlive
from nats.aio.msg import Msg


class FakeMsg:
    def __init__(self) -> None:
        self.touches = 0

    async def in_progress(self) -> None:
        self.touches += 1


def msgs(count: int) -> list[Any]:
    return [FakeMsg() for _ in range(count)]


async def test_touches_each_held_message_once_per_interval() -> None:
    alive = KeepAlive(interval=10.0)
    a, b = msgs(2)
    alive.hold(cast(list[Msg], [a, b]), delivered_at=100.0)
    await alive.touch_due(109.9)
    assert (a.touches, b.touches) == (0, 0)
    await alive.touch_due(110.0)
    await alive.touch_due(115.0)  # touched at 110: not due again before 120
    assert (a.touches, b.touches) == (1, 1)
    alive.drop(cast(Msg, a))
    await alive.touch_due(120.0)
    assert (a.touches, b.touches) == (1, 2)
    assert len(alive) == 1
    assert alive.sent == 3


async def test_a_message_held_past_max_hold_is_let_go() -> None:
    alive = KeepAlive(interval=10.0, max_hold=25.0)
    [stuck] = msgs(1)
    alive.hold(cast(list[Msg], [stuck]), delivered_at=0.0)
    for now in (10.0, 20.0, 30.0, 40.0):
        await alive.touch_due(now)
    assert stuck.touches == 2  # at 10 and 20; from 25 on the server may redeliver it


async def test_a_failing_touch_does_not_stop_the_others() -> None:
    class Broken(FakeMsg):
        async def in_progress(self) -> None:
            raise ConnectionError("gone")

    alive = KeepAlive(interval=1.0)
    ok = FakeMsg()
    alive.hold(cast(list[Msg], [Broken(), ok]), delivered_at=0.0)
    await alive.touch_due(1.0)
    assert ok.touches == 1
