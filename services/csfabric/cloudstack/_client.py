"""The async CloudStack API client every service acts through.

::

    async with CloudStackClient(settings, clock=clock, metrics=metrics) as cs:
        zones = await cs.list_zones()                      # typed, every page
        job = await cs.job("deployVirtualMachine", zoneid=..., templateid=..., ...)
        job.raise_for_status()                             # or read job.error

Transport: our own signed requests over an injectable ``aiohttp.ClientSession``, reusing
``cs``'s parameter encoding and checked against its signer; why not ``AIOCloudStack``
itself is explained in :mod:`csfabric.cloudstack._transport`.

Failures: 530, 533-537 and 429 answers and refused connections are retried (exponential
backoff with jitter, ``max_retries``, sleeping through the fabric clock) and then raised as
:class:`CloudStackTransientError`; 401, 431, 432 and other refusals raise
:class:`CloudStackApiError` (a ``PermanentError``) at once.  Either kind of answer proves
the command did not run, so re-sending it is safe.  A timeout or a dropped connection once
the request was sent proves nothing: a *read-only* command (``list*``, ``query*``,
``find*``, ``get*``; see ``is_read_only``) is retried, a mutating one is not — re-sending
could repeat it — and raises :class:`CloudStackOutcomeUnknown` at once, as does any
failure while :meth:`CloudStackClient.job` waits for a job CloudStack accepted.
``ActionLedger`` reconciles those (the resource tagged ``csfabric:key``) instead of calling
again.

Every HTTP call is one CLIENT span (``cloudstack <command>``) and one observation of
``csfabric_cloudstack_call_seconds{command, outcome}``; neither ever holds parameters, keys
or signatures, and both keys are registered with the log redactor.
"""

from __future__ import annotations

import builtins
import logging
import os
import time
from collections.abc import Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import aiohttp
from opentelemetry import trace
from pydantic import BaseModel
from yarl import URL

from csfabric.cloudstack._models import (
    Event,
    JobResult,
    Project,
    Snapshot,
    Tag,
    VirtualMachine,
    Volume,
    Zone,
)
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
    CloudStackJobTimeout,
    CloudStackOutcomeUnknown,
    CloudStackTransientError,
)
from csfabric.kernel import Clock, ConfigError, Metrics, get_tracer, parse_clock, register_secret
from csfabric.kernel.bus import backoff

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


class CloudStackClient:
    """Signed, rate-limited, traced calls to one CloudStack endpoint."""

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

    async def list(self, command: str, **params: Any) -> builtins.list[dict[str, Any]]:
        """Every item of a ``list*`` command, page by page (``pagesize`` from settings)."""
        pagesize = int(params.pop("pagesize", self.settings.page_size))
        params.pop("page", None)
        items: builtins.list[dict[str, Any]] = []
        page = 1
        while True:
            answer = await self.call(command, page=page, pagesize=pagesize, **params)
            # The one list-valued key (``zone``, ``virtualmachine``...); none when empty.
            batch = next((v for v in answer.values() if isinstance(v, builtins.list)), [])
            items.extend(batch)
            count = answer.get("count")
            total = count if isinstance(count, int) else None
            if len(batch) < pagesize or (total is not None and len(items) >= total):
                return items
            page += 1

    async def job(self, command: str, **params: Any) -> JobResult:
        """Run an async command and wait for its job.

        A job that ran and failed (``jobstatus`` 2) is *returned* with ``error`` set; a
        command CloudStack refuses outright raises like :meth:`call`; a job still pending
        after ``job_timeout`` raises :class:`CloudStackJobTimeout`, and any other failure
        once CloudStack accepted the job raises :class:`CloudStackOutcomeUnknown`: the job
        runs on without us, so the caller must reconcile, not submit it again.
        """
        with get_tracer(__name__).start_as_current_span(
            f"cloudstack job {command}", attributes={"cloudstack.command": command}
        ) as span:
            started = await self.call(command, **params)
            jobid = started.get("jobid")
            resource_id = started.get("id")
            if not jobid:  # some commands answer synchronously after all
                return JobResult(
                    command=command,
                    jobid=None,
                    status="succeeded",
                    result=started,
                    resource_id=resource_id,
                )
            span.set_attribute("cloudstack.jobid", str(jobid))
            try:
                result = await self.wait_job(str(jobid), command=command, resource_id=resource_id)
            except CloudStackOutcomeUnknown:
                raise
            except (CloudStackTransientError, CloudStackApiError) as error:
                text = f"job {jobid} accepted, then {error.errortext}: outcome unknown"
                raise CloudStackOutcomeUnknown(command, error.errorcode, text) from error
            span.set_attribute("cloudstack.job_status", result.status)
            return result

    async def wait_job(
        self, jobid: str, *, command: str = "", resource_id: str | None = None
    ) -> JobResult:
        """Poll ``queryAsyncJobResult`` every ``poll_interval`` until done or ``job_timeout``."""
        s = self.settings
        deadline = self.clock.now() + timedelta(seconds=s.job_timeout)
        while True:
            answer = await self.call("queryAsyncJobResult", jobid=jobid)
            status = int(answer.get("jobstatus", 0))
            if status != 0:
                return JobResult.from_query(command, jobid, resource_id, answer)
            remaining = (deadline - self.clock.now()).total_seconds()
            if remaining <= 0:
                raise CloudStackJobTimeout(command or "queryAsyncJobResult", jobid, s.job_timeout)
            await self.clock.sleep(min(s.poll_interval, remaining))

    async def _typed(self, model: type[M], command: str, params: Any) -> builtins.list[M]:
        return [model.model_validate(item) for item in await self.list(command, **params)]

    async def list_zones(self, **params: Any) -> builtins.list[Zone]:
        return await self._typed(Zone, "listZones", params)

    async def list_volumes(self, **params: Any) -> builtins.list[Volume]:
        return await self._typed(Volume, "listVolumes", params)

    async def list_virtual_machines(self, **params: Any) -> builtins.list[VirtualMachine]:
        return await self._typed(VirtualMachine, "listVirtualMachines", params)

    async def list_snapshots(self, **params: Any) -> builtins.list[Snapshot]:
        return await self._typed(Snapshot, "listSnapshots", params)

    async def list_projects(self, **params: Any) -> builtins.list[Project]:
        return await self._typed(Project, "listProjects", params)

    async def list_tags(self, **params: Any) -> builtins.list[Tag]:
        return await self._typed(Tag, "listTags", params)

    async def list_events(self, **params: Any) -> builtins.list[Event]:
        return await self._typed(Event, "listEvents", params)


__all__ = ["CloudStackClient"]
