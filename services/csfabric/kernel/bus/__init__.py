"""The bus: the fabric's one NATS connection and everything that moves events on it.

The room: :class:`Bus` (publishing with ``Nats-Msg-Id`` dedupe, KV buckets, retrying a
broker that is briefly away), the durable pull :class:`Consumer` with its delivery rules
(ack, nak with backoff, dead letter), dead letters and their subjects, the streams the
fabric declares, and the stream watch that reports fill.

It must not know policies, leases, the ledger, Kafka or any service: it sits just above the
kernel's foundations (errors, clock, logs, tracing, envelope) and below every other kernel
part (the kernel layers contract).

This module is the door: import these names from ``csfabric.kernel.bus``, never from its
``_private`` modules (import-linter's "Door: csfabric.kernel.bus").  Its one error,
:class:`StreamFullError`, is drawn in the tree in :mod:`csfabric.kernel.errors`.
"""

from csfabric.kernel.bus._connection import HEADER_ROOM, MSG_ID, Bus, StreamFullError
from csfabric.kernel.bus._consumer import Consumer, ConsumerOptions, Delivery, Handler, raw_bytes
from csfabric.kernel.bus._delivery import FEED_RETRY_CAP, MAX_DELIVER, backoff
from csfabric.kernel.bus._dlq import DeadLetter, dlq_subject
from csfabric.kernel.bus._retry import retry_broker
from csfabric.kernel.bus._streams import (
    STREAMS,
    ensure_streams,
    subject_intersection,
    subject_matches,
)
from csfabric.kernel.bus._streamwatch import StreamWatch, fill_ratio

__all__ = [
    "FEED_RETRY_CAP",
    "HEADER_ROOM",
    "MAX_DELIVER",
    "MSG_ID",
    "STREAMS",
    "Bus",
    "Consumer",
    "ConsumerOptions",
    "DeadLetter",
    "Delivery",
    "Handler",
    "StreamFullError",
    "StreamWatch",
    "backoff",
    "dlq_subject",
    "ensure_streams",
    "fill_ratio",
    "raw_bytes",
    "retry_broker",
    "subject_intersection",
    "subject_matches",
]
