"""How a :class:`~.consumer.Consumer` fetches, retries and dead-letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nats.js.api import DeliverPolicy

from csfabric.kernel._envelope import DEFAULT_MAX_BYTES
from csfabric.kernel._settings import FabricSettings
from csfabric.kernel.bus._delivery import BACKOFF_BASE, BACKOFF_CAP, MAX_DELIVER

__all__ = ["ConsumerOptions"]


@dataclass
class ConsumerOptions:
    """How a :class:`Consumer` fetches, retries and dead-letters.

    ``max_deliver`` bounds the handler attempts; ``ack_wait`` and the backoff are fabric
    seconds (the server gets ``ack_wait`` in wall time).  Services build theirs with
    :meth:`from_settings`, so that ``CSFABRIC_MAX_DELIVER`` applies.
    """

    stream: str = "CSFABRIC_EVENTS"
    batch: int = 128
    max_workers: int = 64
    max_deliver: int = MAX_DELIVER
    ack_wait: float = 30.0
    # Longest a message is kept alive in hand; then the server may redeliver it elsewhere.
    # Above any sane handler: the CloudStack client waits at most 300 s for a job.
    max_hold: float = 900.0
    backoff_base: float = BACKOFF_BASE
    backoff_cap: float = BACKOFF_CAP
    fetch_timeout: float = 1.0
    lag_interval: float = 10.0
    max_event_bytes: int = DEFAULT_MAX_BYTES
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: FabricSettings, **overrides: Any) -> ConsumerOptions:
        """Options that follow the shared settings (``CSFABRIC_MAX_DELIVER``,
        ``CSFABRIC_MAX_EVENT_BYTES``); ``overrides`` win."""
        values: dict[str, Any] = {
            "max_deliver": settings.max_deliver,
            "max_event_bytes": settings.max_event_bytes,
        }
        return cls(**(values | overrides))
