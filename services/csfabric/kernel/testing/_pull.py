"""Pull subscriptions of the in-memory server: ``fetch`` hands out real nats-py messages."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import ConsumerInfo, RawStreamMsg

from csfabric.kernel.testing._consumer import Delivered
from csfabric.kernel.testing._stream import Stored

if TYPE_CHECKING:
    from csfabric.kernel.testing._client import MemoryJetStream


def reply_subject(stream: str, consumer: str, item: Delivered) -> str:
    stamp = int(item.message.time.timestamp() * 1e9)
    return (
        f"$JS.ACK.{stream}.{consumer}.{item.deliveries}.{item.message.seq}"
        f".{item.cseq}.{stamp}.{item.pending}"
    )


def raw(stream: str, message: Stored) -> RawStreamMsg:
    return RawStreamMsg(
        subject=message.subject,
        seq=message.seq,
        data=message.data or None,
        headers=dict(message.headers) if message.headers else None,
        stream=stream,
        time=message.time,
    )


class PullSubscription:
    """``JetStreamContext.PullSubscription``: ``fetch`` and ``unsubscribe``."""

    def __init__(self, js: MemoryJetStream, stream: str, consumer: str) -> None:
        self._js = js
        self._stream = stream
        self._consumer = consumer
        self._closed = False
        self.delivered = 0

    async def fetch(
        self,
        batch: int = 1,
        timeout: float | None = 5,  # noqa: ASYNC109
        heartbeat: float | None = None,
    ) -> list[Msg]:
        if self._closed:
            raise ValueError("nats: invalid subscription")
        if batch < 1:
            raise ValueError("nats: invalid batch size")
        server = await self._js._api()
        taken = await server.fetch(self._stream, self._consumer, batch, timeout or 5.0)
        self.delivered += len(taken)
        client = cast(Client, self._js._nc)
        return [
            Msg(
                _client=client,
                subject=item.message.subject,
                reply=reply_subject(self._stream, self._consumer, item),
                data=item.message.data,
                headers=dict(item.message.headers) if item.message.headers else None,
            )
            for item in taken
        ]

    async def consumer_info(self) -> ConsumerInfo:
        return await self._js.consumer_info(self._stream, self._consumer)

    async def unsubscribe(self) -> None:
        self._closed = True


__all__ = ["PullSubscription", "raw", "reply_subject"]
