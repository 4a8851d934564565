"""Shared pieces of the delivery-guarantee tests: events, a retrying publisher, a counting
handler that acts through the idempotency ledger, and deadline-bounded polling.

Nothing here sleeps for a guessed amount of time: every wait polls a condition until a
deadline and then fails with the counts that explain what was missing.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from csfabric.kernel import ActionLedger, CloudEvent, TransientError, action_key, make_event
from csfabric.kernel.bus import Bus, Consumer, Delivery
from nats.js.api import RawStreamMsg

T = TypeVar("T")

EVENT_TYPE = "chaos.tick"
EVENTS_STREAM = "CSFABRIC_EVENTS"
DLQ_STREAM = "CSFABRIC_DLQ"


def make_events(count: int, run: str, *, resources: int = 512) -> list[CloudEvent]:
    """``count`` events with unique ids, spread over ``resources`` subjects.

    Several events share a subject, so the consumer's per-resource ordering is exercised
    too, while distinct subjects still run concurrently.
    """
    return [
        make_event(
            type=EVENT_TYPE,
            source=f"/tests/{run}",
            id=f"{run}-{index:06d}",
            subject=f"vm-{index % resources:04d}",
            data={"n": index},
        )
        for index in range(count)
    ]


class Publisher:
    """Publishes every event exactly as given, retrying the same event until it is stored.

    ``Bus.publish_event`` already retries broker hiccups; when it gives up with
    :class:`TransientError` (a long outage) the same event is sent again, and the stream's
    ``Nats-Msg-Id`` dedupe keeps the stored count exact.  With ``consumed`` the publisher
    stays at most ``lead`` events ahead of the consumer, so that a crash triggered at a
    consumed count always finds publishing still going on, however fast the machine.
    """

    def __init__(
        self,
        bus: Bus,
        events: Sequence[CloudEvent],
        *,
        in_flight: int = 64,
        consumed: Callable[[], int] | None = None,
        lead: int = 2_000,
        give_up_after: float = 90.0,
    ) -> None:
        self.bus = bus
        self.events = events
        self.in_flight = in_flight
        self.consumed = consumed
        self.lead = lead
        self.give_up_after = give_up_after
        self.published = 0
        self.retries = 0

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.in_flight)
        give_up_at = time.monotonic() + self.give_up_after
        tasks: list[asyncio.Task[None]] = []
        for index, event in enumerate(self.events):
            while self.consumed is not None and index - self.consumed() >= self.lead:
                await asyncio.sleep(0.005)
            await slots.acquire()
            task = asyncio.create_task(self._publish(event, give_up_at))
            task.add_done_callback(lambda _: slots.release())
            tasks.append(task)
        await asyncio.gather(*tasks)

    async def _publish(self, event: CloudEvent, give_up_at: float) -> None:
        while True:
            try:
                await self.bus.publish_event(event)
            except TransientError:
                self.retries += 1
                if time.monotonic() > give_up_at:
                    raise
                continue
            self.published += 1
            return


class ActingHandler:
    """A handler that records what it sees and runs one external action per event.

    The "external call" appends the event id to :attr:`executed`; ``reconcile`` finds an
    earlier call the way a service finds a CloudStack resource by its ``csfabric:key`` tag.
    So :attr:`executed` holding each id once proves the ledger's at-most-once promise,
    and :attr:`seen` holding every id proves at-least-once delivery.

    With ``flaky_every=N`` the first call of every N-th event fails the way CloudStack's
    530 does (it proves nothing ran): the ledger must let the next delivery call again
    within the consumer's retries, or the event is dead-lettered.
    """

    def __init__(self, ledger: ActionLedger, *, flaky_every: int = 0) -> None:
        self.ledger = ledger
        self.flaky_every = flaky_every
        self.injected: set[str] = set()
        self.seen: Counter[str] = Counter()
        self.executed: list[str] = []
        self._executed: set[str] = set()
        self.sources: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.most_deliveries = 0

    async def __call__(self, event: CloudEvent, delivery: Delivery) -> None:
        self.seen[event.id] += 1
        self.most_deliveries = max(self.most_deliveries, delivery.deliveries)

        async def call() -> dict[str, Any]:
            if self._flaky(event) and event.id not in self.injected:
                self.injected.add(event.id)
                raise TransientError(f"{event.id}: 530 Internal error (injected)")
            self.executed.append(event.id)
            self._executed.add(event.id)
            return {"done": event.id}

        async def reconcile() -> dict[str, Any] | None:
            return {"done": event.id} if event.id in self._executed else None

        try:
            result = await self.ledger.run(action_key(event.id, "act"), call, reconcile=reconcile)
        except Exception as exc:
            self.failures[type(exc).__name__] += 1
            raise
        self.sources[result.source] += 1

    def _flaky(self, event: CloudEvent) -> bool:
        n = event.data.get("n") if isinstance(event.data, dict) else None
        return bool(self.flaky_every) and isinstance(n, int) and n % self.flaky_every == 0

    @property
    def done(self) -> int:
        return len(self._executed)

    def summary(self, expected: int) -> str:
        duplicates = len(self.executed) - len(self._executed)
        return (
            f"seen {len(self.seen)}/{expected} distinct ({sum(self.seen.values())} deliveries), "
            f"executed {len(self.executed)} ({duplicates} duplicates), "
            f"ledger sources {dict(self.sources)}, handler failures {dict(self.failures)} "
            f"({len(self.injected)} injected), "
            f"most deliveries of one message {self.most_deliveries}"
        )


async def eventually(
    check: Callable[[], object],
    *,
    within: float,
    what: str | Callable[[], str],
    interval: float = 0.05,
) -> None:
    """Poll ``check`` (sync or async) until truthy; at the deadline fail with ``what``.

    A check that raises counts as "not yet": during an outage or a leader election the
    broker's answers are exactly what is being waited for.
    """
    deadline = time.monotonic() + within
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
        except Exception as exc:
            last_error = exc
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            suffix = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"not within {within:g}s: {detail}{suffix}")
        await asyncio.sleep(interval)


async def answer(ask: Callable[[], Awaitable[T]], *, within: float = 30.0) -> T:
    """The broker's answer to ``ask()``, asked again while it cannot answer yet.

    Right after a node dies, a JetStream API request can time out while the meta or stream
    leader is being re-elected; that says nothing about what the stream holds.
    """
    deadline = time.monotonic() + within
    while True:
        try:
            return await ask()
        except Exception:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def stream_count(bus: Bus, stream: str) -> int:
    """Messages ``stream`` holds (asked again during leader elections)."""

    async def ask() -> int:
        info = await bus.js.stream_info(stream)
        return int(info.state.messages)

    return await answer(ask)


async def stored(bus: Bus, stream: str) -> list[RawStreamMsg]:
    """Every message ``stream`` holds, in order (small streams only: one request each)."""
    info = await bus.js.stream_info(stream)
    first, last = int(info.state.first_seq), int(info.state.last_seq)
    if not info.state.messages:
        return []
    return [await bus.js.get_msg(stream, seq) for seq in range(first, last + 1)]


async def consumer_settled(bus: Bus, stream: str, durable: str) -> bool:
    """Nothing left to deliver and nothing delivered but unacknowledged."""
    info = await bus.js.consumer_info(stream, durable)
    return not info.num_pending and not info.num_ack_pending


__all__ = [
    "DLQ_STREAM",
    "EVENTS_STREAM",
    "EVENT_TYPE",
    "ActingHandler",
    "Publisher",
    "answer",
    "consumer_settled",
    "eventually",
    "make_events",
    "stored",
    "stream_count",
]


async def assert_exactly_once(
    bus: Bus, handler: ActingHandler, consumer: Consumer[CloudEvent], total: int
) -> None:
    """Every event seen, every action executed exactly once, nothing stored twice or lost."""
    assert len(handler.seen) == total, handler.summary(total)
    assert len(handler.executed) == total, handler.summary(total)
    assert len(set(handler.executed)) == total, handler.summary(total)
    assert await stream_count(bus, EVENTS_STREAM) == total
    assert await stream_count(bus, DLQ_STREAM) == 0
    assert consumer.dead_lettered == 0
