"""Transport retries: what counts as "NATS is briefly away", and the backoff that rides it out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats
from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError, TooManyStalledMsgsError

from csfabric.kernel.errors import TransientError

__all__ = ["RETRYABLE", "T", "retry_broker"]

log = logging.getLogger("csfabric.kernel.bus.connection")

T = TypeVar("T")

RETRYABLE = (
    NatsTimeoutError,
    TimeoutError,
    NoRespondersError,
    # js.publish re-raises NoRespondersError as this: a stream between leaders.
    NoStreamResponseError,
    ServiceUnavailableError,
    ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    TooManyStalledMsgsError,
)


async def retry_broker(
    call: Callable[[], Awaitable[T]], *, what: str, attempts: int = 12, failed: int = 0
) -> T:
    """Await ``call()`` again while NATS is briefly away (a restart, a leader election).

    Backoff doubles from 0.1 s to 2 s, so the default 12 attempts ride out ~15 s — longer
    than a JetStream leader election — before giving up with a :class:`TransientError`.
    This is transport backoff against a real socket, so it sleeps in wall time.
    ``failed`` attempts were made already by the caller (and waited for).
    """
    delay = min(0.1 * 2**failed, 2.0)
    for attempt in range(failed + 1, attempts + 1):
        try:
            return await call()
        except RETRYABLE as exc:
            if attempt == attempts:
                raise TransientError(f"{what}: NATS unavailable after {attempts} attempts") from exc
            log.debug("%s: attempt %d failed (%s), retrying", what, attempt, type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")
