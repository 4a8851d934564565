"""The delivery rules: what happens to a consumed message, decided from the outcome alone.

Pure (no broker), so they are tested with plain tables and Hypothesis.  ``deliveries`` is
the handler attempt: the server's delivery count for the first attempt of a delivery, one
more for each retry the consumer makes in process.

============================  ==================================================
handler returned              ack
PermanentError / bad envelope dead-letter (reason, deliveries, original bytes), ack
other error, attempts left    retry after exponential backoff (+ jitter)
other error, last attempt     dead-letter, ack
============================  ==================================================

The ack after a dead letter comes only once the dead letter is stored.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from csfabric.kernel.errors import PermanentError


@dataclass(frozen=True)
class Delivery:
    """What a handler learns about the message besides the event."""

    subject: str
    deliveries: int
    stream: str | None
    stream_seq: int | None
    headers: dict[str, str]
    raw: bytes


T = TypeVar("T")

MAX_DELIVER = 5  # handler attempts before a dead letter (``CSFABRIC_MAX_DELIVER``)
BACKOFF_BASE = 1.0  # seconds before the first retry, doubled for each further one
BACKOFF_CAP = 60.0  # the longest delay between two attempts
FEED_RETRY_CAP = 30.0  # the longest pause between attempts of a feed's record (AMQP, Kafka)
Handler = Callable[[T, Delivery], Awaitable[None]]


def raw_bytes(data: bytes) -> bytes:
    """Decoder for consumers of non-CloudEvent payloads (audit export, DLQ readers)."""
    return data


class Verdict(Enum):
    ACK = "ack"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


def verdict(error: BaseException | None, deliveries: int, max_deliver: int) -> Verdict:
    """Ack, retry later, or dead-letter — from the handler's outcome alone."""
    if error is None:
        return Verdict.ACK
    if isinstance(error, PermanentError) or deliveries >= max_deliver:
        return Verdict.DEAD_LETTER
    return Verdict.RETRY


def backoff(
    deliveries: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP, jitter: float = 0.2
) -> float:
    """Delay after attempt ``n``: ``base * 2**(n-1)`` capped at ``cap``, ± ``jitter`` of it.

    With the defaults (1 s, 60 s, 5 attempts) a failing message waits about 1 + 2 + 4 + 8
    = 15 s in all before it is dead-lettered.
    """
    delay: float = min(cap, base * 2.0 ** max(0, deliveries - 1))
    return delay * (1 + random.uniform(-jitter, jitter))


__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "MAX_DELIVER",
    "Delivery",
    "Handler",
    "Verdict",
    "backoff",
    "raw_bytes",
    "verdict",
]
