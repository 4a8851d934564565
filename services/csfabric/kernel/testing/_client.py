"""The client side: what the kernel calls on ``nats.aio.client.Client`` and
``JetStreamContext``, answered by a :class:`~._server.MemoryNats`.

Messages handed out are real :class:`nats.aio.msg.Msg` objects whose reply subject is the
one nats-server would give, so ``ack``/``nak``/``in_progress``/``term`` and ``metadata`` are
nats-py's own code; KV buckets are nats-py's own :class:`~nats.js.kv.KeyValue` over this
JetStream, so its create/update/delete/watch logic runs unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from nats.aio.client import Client
from nats.errors import ConnectionClosedError
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    ConsumerInfo,
    DiscardPolicy,
    KeyValueConfig,
    PubAck,
    RawStreamMsg,
    StreamConfig,
    StreamInfo,
)
from nats.js.errors import BucketNotFoundError, InvalidBucketNameError
from nats.js.kv import KeyValue

from csfabric.kernel.testing._pull import PullSubscription, raw
from csfabric.kernel.testing._server import MemoryNats
from csfabric.kernel.testing._watch import PushSubscription


class MemoryClient:
    """Stands in for a connected ``nats.aio.client.Client``."""

    def __init__(self, server: MemoryNats, name: str) -> None:
        self.server = server
        self.name = name
        self.max_payload = server.max_payload
        self.stats: dict[str, int] = {"reconnects": 0, "in_msgs": 0, "out_msgs": 0}
        self.subscriptions: set[PushSubscription] = set()
        self._closed = False

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def is_connected(self) -> bool:
        return not self._closed

    def check(self) -> None:
        if self._closed:
            raise ConnectionClosedError

    def jetstream(self, timeout: float = 5.0, **_: Any) -> MemoryJetStream:
        return MemoryJetStream(self, timeout)

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        reply: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Core publish: acks go to their consumer; a stream subject is stored, unacked."""
        self.check()
        if subject.startswith("$JS.ACK."):
            self.server.settle(subject, payload)
            return
        self.stats["out_msgs"] += 1
        try:
            self.server.publish(subject, payload, headers)
        except Exception:
            return  # a core publish is fire-and-forget: the server's refusal goes nowhere

    async def flush(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109
        self.check()

    async def drain(self) -> None:
        await self.close()

    async def close(self) -> None:
        """Closed: every call refuses, and this client's watches end, as on a socket."""
        self._closed = True
        for subscription in list(self.subscriptions):
            await subscription.unsubscribe()

    def as_client(self) -> Client:
        """This object typed as what the kernel's ``Bus`` takes."""
        return cast(Client, self)


class MemoryJetStream:
    """The subset of ``JetStreamContext`` (and its manager) the kernel uses."""

    def __init__(self, client: MemoryClient, timeout: float) -> None:
        self._nc = client
        self._timeout = timeout
        self.server = client.server

    async def _api(self) -> MemoryNats:
        self._nc.check()
        await asyncio.sleep(0)  # a request yields, as a round trip would
        return self.server

    # -- publish and read ----------------------------------------------------------------

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,  # noqa: ASYNC109
        stream: str | None = None,
        headers: dict[str, str] | None = None,
        msg_ttl: float | None = None,
    ) -> PubAck:
        if msg_ttl is not None:
            raise NotImplementedError("per-message TTL is not modelled by the in-memory server")
        if stream is not None:
            headers = {**(headers or {}), "Nats-Expected-Stream": stream}
        server = await self._api()
        return server.publish(subject, payload, headers)

    async def get_msg(
        self,
        stream_name: str,
        seq: int | None = None,
        subject: str | None = None,
        direct: bool | None = False,
        next: bool | None = False,
    ) -> RawStreamMsg:
        server = await self._api()
        found = server.stream(stream_name).get(seq, subject, bool(next))
        return raw(stream_name, found)

    async def get_last_msg(
        self, stream_name: str, subject: str, direct: bool | None = False
    ) -> RawStreamMsg:
        return await self.get_msg(stream_name, subject=subject, direct=direct)

    # -- streams -------------------------------------------------------------------------

    async def add_stream(self, config: StreamConfig | None = None, **params: Any) -> StreamInfo:
        config = (config or StreamConfig()).evolve(**params)
        return (await self._api()).add_stream(config)

    async def update_stream(self, config: StreamConfig | None = None, **params: Any) -> StreamInfo:
        config = (config or StreamConfig()).evolve(**params)
        return (await self._api()).update_stream(config)

    async def stream_info(self, name: str, subjects_filter: str | None = None) -> StreamInfo:
        return (await self._api()).stream_info(name)

    async def delete_stream(self, name: str) -> bool:
        return (await self._api()).delete_stream(name)

    async def purge_stream(
        self, name: str, seq: int | None = None, subject: str | None = None, keep: int | None = None
    ) -> bool:
        if seq or keep:
            raise NotImplementedError("purge by seq/keep is not modelled by the in-memory server")
        (await self._api()).stream(name).purge(subject)
        return True

    # -- consumers -----------------------------------------------------------------------

    async def add_consumer(
        self,
        stream: str,
        config: ConsumerConfig | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        **params: Any,
    ) -> ConsumerInfo:
        config = (config or ConsumerConfig()).evolve(**params)
        return (await self._api()).add_consumer(stream, config)

    async def consumer_info(
        self,
        stream: str,
        consumer: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ConsumerInfo:
        return (await self._api()).consumer_info(stream, consumer)

    async def delete_consumer(self, stream: str, consumer: str) -> bool:
        return (await self._api()).delete_consumer(stream, consumer)

    async def pull_subscribe_bind(
        self,
        consumer: str | None = None,
        stream: str | None = None,
        durable: str | None = None,
        name: str | None = None,
        **_: Any,
    ) -> PullSubscription:
        if not stream:
            raise ValueError("nats: stream name is required")
        await self._api()
        return PullSubscription(self, stream, durable or name or consumer or "")

    async def subscribe(
        self, subject: str, *, stream: str | None = None, cb: Any = None, **options: Any
    ) -> PushSubscription:
        """An ordered push consumer: what ``KeyValue.watch`` asks for."""
        if stream is None or cb is None or not options.get("ordered_consumer"):
            raise NotImplementedError("only ordered push consumers (KV watches) are modelled")
        server = await self._api()
        return PushSubscription(self._nc, server.stream(stream), subject, cb, **options)

    # -- key-value -----------------------------------------------------------------------

    async def key_value(self, bucket: str) -> KeyValue:
        server = await self._api()
        try:
            info = server.stream_info(f"KV_{bucket}")
        except Exception:
            raise BucketNotFoundError from None
        return self._bucket(bucket, bool(info.config.allow_direct))

    async def create_key_value(
        self, config: KeyValueConfig | None = None, **params: Any
    ) -> KeyValue:
        config = (config or KeyValueConfig(bucket=params["bucket"])).evolve(**params)
        if not config.bucket or any(c in config.bucket for c in ".*> "):
            raise InvalidBucketNameError
        window = min(config.ttl, 120.0) if config.ttl else 120.0
        stream = StreamConfig(
            name=f"KV_{config.bucket}",
            description=config.description,
            subjects=[f"$KV.{config.bucket}.>"],
            allow_direct=config.direct,
            allow_rollup_hdrs=True,
            deny_delete=True,
            discard=DiscardPolicy.NEW,
            duplicate_window=window,
            max_age=config.ttl,
            max_bytes=config.max_bytes,
            max_msgs=-1,
            max_msg_size=config.max_value_size,
            max_msgs_per_subject=config.history,
            num_replicas=config.replicas,
            storage=config.storage,
        )
        await self.add_stream(stream)
        return self._bucket(config.bucket, bool(config.direct))

    async def delete_key_value(self, bucket: str) -> bool:
        return await self.delete_stream(f"KV_{bucket}")

    def _bucket(self, bucket: str, direct: bool) -> KeyValue:
        js = cast(JetStreamContext, self)
        return KeyValue(
            name=bucket, stream=f"KV_{bucket}", pre=f"$KV.{bucket}.", js=js, direct=direct
        )


__all__ = ["MemoryClient", "MemoryJetStream"]
