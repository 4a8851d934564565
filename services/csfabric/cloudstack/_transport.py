"""The wire: signing a request, reading an answer, classifying errors, and the per-endpoint gate.

Why not ``cs``'s ``AIOCloudStack`` as the transport (checked against cs 5.2.0's source):

* it waits for async jobs only with ``fetch_result=True``, polls with ``asyncio.sleep`` in
  wall time (our job timeouts and poll intervals are fabric time, so scaled and stepped
  clocks must drive them), and turns a failed job into an exception without its code;
* its ``retry`` covers only connection errors, and only on ``list*``/``queryAsync*``; 530
  and 533-537 answers and timeouts are not retried at all;
* it has no hook for a rate limit, a concurrency cap, spans or metrics around each request,
  and its ``expires`` comes from the wall clock, not the fabric clock;
* a non-200 answer raises ``CloudStackApiException`` whose ``response`` holds the signed URL,
  which would leak the key and signature into any trace or log that records the exception.

What we *do* reuse is cs's parameter handling, so requests are byte-for-byte what ``cs``
sends: :func:`cs.client.transform` (booleans, lists, ``tags[0].key`` maps) and
:func:`cs.client.cs_encode` (Java ``URLEncoder`` with ``%20``).  cs's own signer is the
private method ``CloudStack._sign``; :func:`sign` is the same six lines over ``cs_encode``,
and a unit test asserts both give the same signature.  The HTTP session is an injected
``aiohttp.ClientSession`` (the simulator's tests run it in-process or over a socket).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from cs.client import EXPIRES_FORMAT, cs_encode, transform
from prometheus_client import CollectorRegistry, Histogram

from csfabric.cloudstack.errors import (
    CloudStackApiError,
    CloudStackOutcomeUnknown,
    CloudStackTransientError,
)
from csfabric.kernel import HANDLER_BUCKETS

# CloudStack's server-side failures that a later attempt can get past (internal error,
# insufficient capacity, resource allocation/unavailable, ...), plus what proxies and
# throttling answer with.
TRANSIENT_CODES = frozenset({429, 500, 502, 503, 504, 530, 533, 534, 535, 536, 537})
# Answers without CloudStack's error body that may come *after* CloudStack ran the command:
# a proxy that gave up waiting (504), lost the upstream mid-answer (502), or a servlet that
# failed while writing the answer (500).  429 and 503 are refusals before it ran.
MAYBE_RAN_CODES = frozenset({500, 502, 504})
# Commands that change nothing, so re-sending one can never repeat an action.  ``get*``
# reads, except ``getUploadParamsFor*``, which allocates the volume/template/ISO it names.
READ_ONLY_PREFIXES = ("list", "query", "find", "get")
_MUTATING_GETS = ("getuploadparamsfor",)


def is_read_only(command: str) -> bool:
    """True for commands that change nothing in CloudStack (safe to re-send at any time)."""
    name = command.lower()
    return name.startswith(READ_ONLY_PREFIXES) and not name.startswith(_MUTATING_GETS)


def classify(
    command: str, errorcode: int, errortext: str, cserrorcode: int | None = None
) -> CloudStackApiError | CloudStackTransientError:
    """The error for a CloudStack error code: transient codes retry, the rest are final."""
    if errorcode in TRANSIENT_CODES:
        return CloudStackTransientError(command, errorcode, errortext, cserrorcode)
    return CloudStackApiError(command, errorcode, errortext, cserrorcode)


def sign(params: Mapping[str, str], secret: str) -> str:
    """CloudStack's request signature, exactly as ``cs``'s ``CloudStack._sign`` computes it."""
    text = "&".join(f"{key}={cs_encode(value)}" for key, value in sorted(params.items()))
    digest = hmac.new(secret.encode(), text.lower().encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode().strip()


def signed_query(
    command: str, params: Mapping[str, Any], *, key: str, secret: str, expires: datetime
) -> str:
    """The encoded query string of a signed v3 request (``response=json``)."""
    values: dict[str, Any] = dict(params)
    transform(values)
    values.pop("signature", None)
    values.update(
        command=command,
        response="json",
        apiKey=key,
        signatureVersion="3",
        expires=expires.strftime(EXPIRES_FORMAT),
    )
    values["signature"] = sign(values, secret)
    # Encoded by us rather than by aiohttp, so '+' and '/' in base64 signatures reach the
    # server exactly as they were signed.
    return "&".join(f"{cs_encode(k)}={cs_encode(v)}" for k, v in values.items())


def read_answer(
    command: str, status: int, body: bytes, *, mutating: bool = False
) -> dict[str, Any]:
    """The inner object of ``{"<command>response": {...}}``, or the classified error.

    An error answer in CloudStack's own shape proves the command did not run; for a
    ``mutating`` command, a 500/502/504 without that shape does not (see ``MAYBE_RAN_CODES``).
    """
    try:
        document = json.loads(body)
        [(_, inner)] = document.items()
    except (ValueError, AttributeError):
        inner = None
    if not isinstance(inner, dict):
        if status == 200:
            # A proxy's HTML page or a wrong endpoint: retrying will not fix the URL.
            raise CloudStackApiError(command, status, "answer is not a CloudStack JSON object")
        text = f"HTTP {status} without a CloudStack error body"
        if mutating and status in MAYBE_RAN_CODES:
            raise CloudStackOutcomeUnknown(command, status, f"{text}: outcome unknown")
        raise classify(command, status, text)
    if status == 200:
        return inner
    errorcode = _int(inner.get("errorcode")) or status
    errortext = str(inner.get("errortext", f"HTTP {status}"))
    raise classify(command, errorcode, errortext, _int(inner.get("cserrorcode")))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class TokenBucket:
    """``rate`` requests per second, bursts of up to ``rate`` (at least 1).

    Wall time on purpose: it protects a real server's real capacity, whatever the
    fabric clock says.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._stamp = time.monotonic()
        # Waiters queue on the lock, so tokens go out first come, first served.
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


class EndpointGate:
    """The rate limit and the concurrency cap of one endpoint."""

    def __init__(self, rate: float | None, concurrency: int) -> None:
        self.bucket = TokenBucket(rate) if rate else None
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self.in_flight = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with self._slots:
            if self.bucket is not None:
                await self.bucket.acquire()
            self.in_flight += 1
            try:
                yield
            finally:
                self.in_flight -= 1


# One gate per endpoint per event loop: clients of one process share an endpoint's budget;
# asyncio primitives cannot cross loops (each test has its own).
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, EndpointGate]] = (
    weakref.WeakKeyDictionary()
)


def gate_for(endpoint: str, rate: float | None, concurrency: int) -> EndpointGate:
    """The shared gate of ``endpoint``; the first client to ask sets its limits."""
    gates = _gates.setdefault(asyncio.get_running_loop(), {})
    gate = gates.get(endpoint)
    if gate is None:
        gate = gates[endpoint] = EndpointGate(rate, concurrency)
    return gate


_histograms: weakref.WeakKeyDictionary[CollectorRegistry, Histogram] = weakref.WeakKeyDictionary()


def call_histogram(registry: CollectorRegistry) -> Histogram:
    # prometheus refuses a second registration of a name: one histogram per registry,
    # however many clients share a service's Metrics.
    histogram = _histograms.get(registry)
    if histogram is None:
        histogram = _histograms[registry] = Histogram(
            "csfabric_cloudstack_call_seconds",
            "CloudStack API calls (HTTP requests, after retries), by command and outcome",
            ["service", "command", "outcome"],
            buckets=HANDLER_BUCKETS,
            registry=registry,
        )
    return histogram


__all__ = [
    "MAYBE_RAN_CODES",
    "READ_ONLY_PREFIXES",
    "TRANSIENT_CODES",
    "EndpointGate",
    "TokenBucket",
    "call_histogram",
    "classify",
    "gate_for",
    "is_read_only",
    "read_answer",
    "sign",
    "signed_query",
]
