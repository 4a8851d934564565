"""The delivery rules: what happens to a consumed message, decided from the outcome alone.

Pure (no broker), so they are tested with plain tables and Hypothesis.

============================  ==================================================
handler returned              ack
PermanentError / bad envelope dead-letter (reason, deliveries, original bytes), ack
other error, deliveries left  nak with exponential backoff (+ jitter)
other error, last delivery    dead-letter, ack
============================  ==================================================
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from .errors import PermanentError


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


def backoff(deliveries: int, base: float = 0.5, cap: float = 60.0, jitter: float = 0.2) -> float:
    """Delay before the next delivery: ``base * 2**(n-1)`` capped, ± ``jitter`` of it."""
    delay: float = min(cap, base * 2.0 ** max(0, deliveries - 1))
    return delay * (1 + random.uniform(-jitter, jitter))


__all__ = ["Delivery", "Handler", "Verdict", "backoff", "raw_bytes", "verdict"]
