"""One CloudStack command as a signed, rate-limited, traced and retried HTTP request.

:class:`SignedCalls` is the base of :class:`~csfabric.cloudstack._client.CloudStackClient`,
which builds pages, jobs and typed lists on its :meth:`~SignedCalls.call`.

Failures: 530, 533-537 and 429 answers and refused connections are retried (exponential
backoff with jitter, ``max_retries``, sleeping through the fabric clock) and then raised as
:class:`CloudStackTransientError`; 401, 431, 432 and other refusals raise
:class:`CloudStackApiError` (a ``PermanentError``) at once.  Either kind of answer proves
the command did not run, so re-sending it is safe.  A timeout or a dropped connection once
the request was sent proves nothing: a *read-only* command (``list*``, ``query*``,
``find*``, ``get*``; see ``is_read_only``) is retried, a mutating one is not — re-sending
could repeat it — and raises :class:`CloudStackOutcomeUnknown` at once.
``ActionLedger`` reconciles those (the resource tagged ``csfabric:key``) instead of calling
again.

Every HTTP call is one CLIENT span (``cloudstack <command>``) and one observation of
``csfabric_cloudstack_call_seconds{command, outcome}``; neither ever holds parameters, keys
or signatures, and both keys are registered with the log redactor.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp
from opentelemetry import trace
from yarl import URL

from csfabric.cloudstack._settings import CloudStackSettings
from csfabric.cloudstack._transport import (
    EndpointGate,
    call_histogram,
    gate_for,
    is_read_only,
    read_answer,
    signed_query,
)
from csfabric.cloudstack.errors import (
    CloudStackApiError,
    CloudStackOutcomeUnknown,
    CloudStackTransientError,
)
from csfabric.kernel import Clock, ConfigError, Metrics, get_tracer, parse_clock, register_secret
from csfabric.kernel.bus import backoff

log = logging.getLogger(__name__)


class SignedCalls:
    """Signed, rate-limited, traced calls to one CloudStack endpoint (one command each)."""

    def __init__(
        self,
        settings: CloudStackSettings | None = None,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        session: aiohttp.ClientSession | None = None,
        gate: EndpointGate | None = None,
    ) -> None:
        self.settings = settings or CloudStackSettings()
        if self.settings.key is None or self.settings.secret is None:
            raise ConfigError(
                "CloudStack key and secret are required "
                "(CSFABRIC_CLOUDSTACK_KEY/SECRET or CLOUDSTACK_KEY/SECRET)"
            )
        self._key = self.settings.key.get_secret_value()
        self._secret = self.settings.secret.get_secret_value()
        register_secret(self._key)
        register_secret(self._secret)
        self.endpoint = self.settings.endpoint
        parts = urlsplit(self.endpoint)
        default_port = 443 if parts.scheme == "https" else 80
        self._server = (parts.hostname or "", parts.port or default_port)
        self.clock = clock or parse_clock(os.environ.get("CSFABRIC_CLOCK", "real"))
        self.metrics = metrics or Metrics("cloudstack")
        self._histogram = call_histogram(self.metrics.registry)
        self._session = session
        self._owns_session = session is None
        self._gate = gate

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session this client opened; an injected one belongs to the caller."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def gate(self) -> EndpointGate:
        if self._gate is None:
            s = self.settings
            self._gate = gate_for(self.endpoint, s.rate_limit_per_second, s.max_concurrency)
        return self._gate

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def call(self, command: str, **params: Any) -> dict[str, Any]:
        """One command; the inner object of ``{"<command>response": {...}}``."""
        tracer = get_tracer(__name__)
        attributes: dict[str, str | int] = {
            "cloudstack.command": command,
            "rpc.system": "cloudstack",
            "server.address": self._server[0],
            "server.port": self._server[1],
        }
        with tracer.start_as_current_span(
            f"cloudstack {command}", kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            started = time.perf_counter()
            outcome = "cancelled"  # until proven otherwise: CancelledError is a BaseException
            try:
                answer = await self._with_retries(command, params, span)
                outcome = "success"
                return answer
            except CloudStackApiError as error:
                outcome = "permanent"
                span.set_attribute("cloudstack.errorcode", error.errorcode)
                raise
            except CloudStackTransientError as error:
                outcome = "unknown" if isinstance(error, CloudStackOutcomeUnknown) else "transient"
                if error.errorcode is not None:
                    span.set_attribute("cloudstack.errorcode", error.errorcode)
                raise
            finally:
                span.set_attribute("cloudstack.outcome", outcome)
                elapsed = time.perf_counter() - started
                self._histogram.labels(self.metrics.service, command, outcome).observe(elapsed)

    async def _with_retries(
        self, command: str, params: Mapping[str, Any], span: trace.Span
    ) -> dict[str, Any]:
        s = self.settings
        mutating = not is_read_only(command)
        attempt = 1
        while True:
            span.set_attribute("cloudstack.attempts", attempt)
            try:
                return await self._once(command, params, mutating=mutating)
            except CloudStackOutcomeUnknown:
                raise  # it may have run: re-sending could do it twice
            except CloudStackTransientError as error:
                if attempt > s.max_retries:
                    raise
                delay = backoff(attempt, s.retry_backoff, s.retry_backoff_cap)
                span.add_event(
                    "retry",
                    {"attempt": attempt, "errorcode": error.errorcode or 0, "delay_s": delay},
                )
                log.warning(
                    "CloudStack %s failed (%s), retry %d/%d in %.2fs",
                    command,
                    error.errortext,
                    attempt,
                    s.max_retries,
                    delay,
                    extra={"command": command, "errorcode": error.errorcode},
                )
                await self.clock.sleep(delay)
                attempt += 1

    async def _once(
        self, command: str, params: Mapping[str, Any], *, mutating: bool
    ) -> dict[str, Any]:
        timeout = self.settings.timeout
        # A connect timeout of its own, so an endpoint that is down shows as "never sent".
        limits = aiohttp.ClientTimeout(total=timeout, connect=timeout / 2)
        async with self.gate.slot():
            # Signed inside the slot, so a request queued behind the limit is not stale.
            expires = self.clock.now() + timedelta(seconds=self.settings.signature_ttl)
            query = signed_query(
                command, params, key=self._key, secret=self._secret, expires=expires
            )
            url = URL(f"{self.endpoint}?{query}", encoded=True)
            try:
                async with self._http().get(url, timeout=limits) as response:
                    status, body = response.status, await response.read()
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
                # No connection, so nothing was sent: safe to re-send, whatever the command.
                # Only the class name: aiohttp's messages can quote the signed URL, and
                # ``from None`` keeps them out of tracebacks recorded on spans.
                text = f"connection failed ({type(error).__name__})"
                raise CloudStackTransientError(command, None, text) from None
            except TimeoutError:
                raise self._lost(command, f"timed out after {timeout:g}s", mutating) from None
            except aiohttp.ClientError as error:
                text = f"connection lost ({type(error).__name__})"
                raise self._lost(command, text, mutating) from None
        trace.get_current_span().set_attribute("http.response.status_code", status)
        return read_answer(command, status, body, mutating=mutating)

    @staticmethod
    def _lost(command: str, text: str, mutating: bool) -> CloudStackTransientError:
        """The error for a request that was sent but got no answer."""
        if mutating:
            return CloudStackOutcomeUnknown(command, None, f"{text}: outcome unknown")
        return CloudStackTransientError(command, None, text)


__all__ = ["SignedCalls"]
