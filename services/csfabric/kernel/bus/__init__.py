"""TODO: what csfabric.kernel.bus is."""

from csfabric.kernel.bus._connection import MSG_ID, Bus, StreamFullError, retry_broker
from csfabric.kernel.bus._consumer import Consumer, ConsumerOptions, Delivery, Handler, raw_bytes
from csfabric.kernel.bus._delivery import backoff
from csfabric.kernel.bus._dlq import DeadLetter, dlq_subject
from csfabric.kernel.bus._streams import STREAMS, ensure_streams
from csfabric.kernel.bus._streamwatch import StreamWatch, fill_ratio

__all__ = [
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
]
