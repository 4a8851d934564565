"""Ordered push consumers, the kind ``KeyValue.watch`` subscribes: the last message per
subject (or all of them) first, then every new one, each to the callback in stream order
with ``num_pending`` in its metadata, as nats-server sends them."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, ConsumerInfo, DeliverPolicy, SequenceInfo

from csfabric.kernel.bus import subject_matches
from csfabric.kernel.testing._stream import Stored, Stream

if TYPE_CHECKING:
    from csfabric.kernel.testing._client import MemoryClient

_names = itertools.count(1)


class PushSubscription:
    def __init__(
        self,
        client: MemoryClient,
        stream: Stream,
        subject: str,
        cb: Callable[[Msg], Awaitable[None]],
        *,
        deliver_policy: DeliverPolicy | None = None,
        headers_only: bool | None = None,
        **_: Any,
    ) -> None:
        self._client = client
        self._stream = stream
        self._subject = subject
        self._cb = cb
        self._headers_only = bool(headers_only)
        self._policy = deliver_policy or DeliverPolicy.ALL
        self._name = f"WATCH{next(_names)}"
        self._created = client.server.clock.now()
        self._queue: deque[int] = deque(self._initial())
        self._wake = asyncio.Event()
        self._wake.set()
        self.delivered = 0
        self._cseq = 0
        client.server.listeners.append(self._on_store)
        client.subscriptions.add(self)
        self._task = asyncio.create_task(self._deliver(), name=f"memory-watch:{subject}")

    def _initial(self) -> list[int]:
        matching = [message.seq for message in self._stream.by_subject(self._subject)]
        if self._policy == DeliverPolicy.NEW:
            return []
        if self._policy == DeliverPolicy.LAST_PER_SUBJECT:
            last: dict[str, int] = {}
            for seq in matching:
                last[self._stream.messages[seq].subject] = seq
            return sorted(last.values())
        return matching

    def _on_store(self, stream: Stream, message: Stored) -> None:
        if stream is self._stream and subject_matches(self._subject, message.subject):
            self._queue.append(message.seq)
            self._wake.set()

    async def _deliver(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            seq = self._queue.popleft()
            self.delivered += 1
            message = self._stream.messages.get(seq)
            if message is None:
                continue  # replaced or removed before we got to it: the server skips it
            self._cseq += 1
            stamp = int(message.time.timestamp() * 1e9)
            reply = (
                f"$JS.ACK.{self._stream.name}.{self._name}.1.{seq}.{self._cseq}"
                f".{stamp}.{len(self._queue)}"
            )
            headers = dict(message.headers) if message.headers else None
            data = message.data
            if self._headers_only:
                headers = {**(headers or {}), "Nats-Msg-Size": str(len(data))}
                data = b""
            client = cast(Client, self._client)
            await self._cb(
                Msg(
                    _client=client, subject=message.subject, reply=reply, data=data, headers=headers
                )
            )

    async def consumer_info(self) -> ConsumerInfo:
        return ConsumerInfo(
            name=self._name,
            stream_name=self._stream.name,
            config=ConsumerConfig(filter_subject=self._subject, deliver_policy=self._policy),
            created=self._created,
            delivered=SequenceInfo(consumer_seq=self._cseq, stream_seq=0),
            num_pending=len(self._queue),
        )

    async def unsubscribe(self, limit: int = 0) -> None:
        self._client.subscriptions.discard(self)
        if self._on_store in self._client.server.listeners:
            self._client.server.listeners.remove(self._on_store)
        self._task.cancel()
        if asyncio.current_task() is not self._task:  # stopped from its own callback
            await asyncio.gather(self._task, return_exceptions=True)


__all__ = ["PushSubscription"]
