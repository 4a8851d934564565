"""CloudStack's webhook deliveries (4.20+) → the pipeline, over one long-lived aiohttp server.

CloudStack tries a delivery three times (10 s timeout each, no backoff) and counts only a
200, so the answer must be fast and honest: 200 only after the event is stored (or known
to be stored, or CloudStack's test ping, or dead-lettered — a malformed body would fail
the same way on every retry), 503 with ``Retry-After`` when it cannot be stored now (NATS
away, or the events stream full: back-pressure), 401 for a missing, malformed or forged
``X-CS-Signature``, 408 for a body not read within ``webhook_read_timeout``, 413 for a body
over the limit (refused while reading, never buffered whole), 405 for anything but POST.

A 401 never waits for NATS: refusals are counted in memory per source and window
(:class:`~.logic.RejectTally`) and one audit record per count is written in the background
when its window ends.  With no secret configured the receiver refuses to start, unless
``webhook_allow_unsigned`` says otherwise (and then it warns at start, in ``doctor`` and in
``status``).  A connection that does not send its request head within
``webhook_header_timeout`` is closed (slowloris).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from csfabric.cloudstack import NativeMessage
from csfabric.ingest.handlers import Pipeline
from csfabric.ingest.logic import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_STATUS,
    RejectCount,
    Rejection,
    RejectTally,
    check_request,
    check_signature,
    reject_audit_key,
    usable_header,
)
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel import ConfigError, default_instance, get_logger, register_secret
from csfabric.kernel.bus import StreamFullError
from csfabric.kernel.service import ServiceContext

log = get_logger(__name__)

# Only what the parser and the audit trail use travels on; the signature stays here.
_KEPT_HEADERS = (EVENT_ID_HEADER, "X-CS-Event", "User-Agent")
UNSIGNED_WARNING = (
    "webhook receiver accepts UNSIGNED deliveries (no secret file,"
    " CSFABRIC_INGEST_WEBHOOK_ALLOW_UNSIGNED=true): anyone who reaches it can inject events"
)
NO_SECRET = (
    "the webhook receiver has no secret: set CSFABRIC_INGEST_WEBHOOK_SECRET_FILE (or"
    " CSFABRIC_CLOUDSTACK_WEBHOOK_SECRET_FILE) to the file CloudStack's webhook secret is in,"
    " or CSFABRIC_INGEST_WEBHOOK_ALLOW_UNSIGNED=true to accept unsigned deliveries"
)
# A response after a timed-out body read, and the lingering read after it, stay short.
_LINGER = 2.0
# The last flush at shutdown: milliseconds with NATS there; bounded when it is not, so the
# stop step stays within the runtime's stop timeout.
_FINAL_FLUSH = 2.0


class WebhookReceiver:
    """``POST <webhook_path>`` on ``webhook_host:webhook_port``; ``start`` then ``stop``."""

    def __init__(self, ctx: ServiceContext, pipeline: Pipeline, settings: IngestSettings) -> None:
        self.ctx, self.pipeline, self.settings = ctx, pipeline, settings
        self.secret = settings.webhook_secret()
        if self.secret is not None:
            register_secret(self.secret.decode(errors="replace"))
        elif not settings.webhook_allow_unsigned:
            raise ConfigError(NO_SECRET)  # fail closed: never accept unsigned by accident
        self.max_bytes = settings.webhook_max_bytes
        self.rejections = RejectTally(
            settings.webhook_reject_window, max_sources=settings.webhook_reject_sources
        )
        self._instance = default_instance()
        self._runner: web.AppRunner | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.port = settings.webhook_port

    @property
    def url(self) -> str:
        return f"http://{self.settings.webhook_host}:{self.port}{self.settings.webhook_path}"

    def app(self) -> web.Application:
        # client_max_size makes request.read() stop with 413 as soon as the limit is passed.
        app = web.Application(client_max_size=self.max_bytes)
        app.router.add_route("*", self.settings.webhook_path, self._handle)
        return app

    async def start(self) -> None:
        if self.secret is None:
            log.warning(UNSIGNED_WARNING)
            self.ctx.warnings.append(UNSIGNED_WARNING)
        # No access log: at hundreds of deliveries a second it would cost more than the work.
        # keepalive_timeout also bounds how long a connection may take to send its request
        # head (aiohttp arms it at connect), which closes slowloris connections.
        self._runner = web.AppRunner(
            self.app(),
            access_log=None,
            shutdown_timeout=self.settings.webhook_timeout,
            keepalive_timeout=self.settings.webhook_header_timeout,
            lingering_time=_LINGER,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.webhook_host, self.settings.webhook_port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._flusher = asyncio.create_task(self._flush_loop(), name="webhook:rejections")
        log.info("webhook receiver on %s", self.url, extra={"signed": self.secret is not None})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
            # The open window too: a clean stop loses no count (NATS away: logged, lost).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FINAL_FLUSH):
                    await self.flush_rejections(final=True)
            if self.rejections:
                log.error("%d refused-request counts not audited at stop", len(self.rejections))

    async def _handle(self, request: web.Request) -> web.Response:
        refused = check_request(request.method, request.content_length, self.max_bytes)
        if refused is not None:
            return _answer(refused)
        try:
            async with asyncio.timeout(self.settings.webhook_read_timeout):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _answer(Rejection(413, f"body exceeds {self.max_bytes} bytes"))
        except TimeoutError:
            limit = self.settings.webhook_read_timeout
            response = _answer(Rejection(408, f"body not received within {limit:g}s"))
            response.force_close()
            return response
        forged = check_signature(self.secret, body, request.headers.get(SIGNATURE_HEADER))
        if forged is not None:
            self._count_rejection(request, len(body), forged)
            return _answer(forged)
        headers = {}
        for name in _KEPT_HEADERS:
            value = request.headers.get(name)
            if value is None:
                continue
            if usable_header(name, value):
                headers[name] = value
            else:
                log.info("webhook header %s dropped: not a usable value", name)
        msg = NativeMessage(body=body, transport="webhook", headers=headers)
        try:
            # Bounded below CloudStack's 10 s: a clear 503 beats its timeout, and a publish
            # cut short here is harmless (its retry carries the same Nats-Msg-Id).
            async with asyncio.timeout(self.settings.webhook_timeout):
                outcome = await self.pipeline.ingest(msg)
        except StreamFullError:  # back-pressure: CloudStack keeps the event and retries
            log.warning("webhook delivery refused: the events stream is full")
            return self._unavailable("stream full, retry later\n")
        except Exception as error:  # not stored: CloudStack's retry may find NATS back
            log.warning("webhook delivery not stored: %s", type(error).__name__)
            return self._unavailable("not stored, retry\n")
        return web.Response(status=WEBHOOK_STATUS[outcome], text=f"{outcome}\n")

    def _unavailable(self, text: str) -> web.Response:
        retry = {"Retry-After": str(self.settings.webhook_retry_after)}
        return web.Response(status=503, text=text, headers=retry)

    def _count_rejection(self, request: web.Request, size: int, why: Rejection) -> None:
        """Counted in memory only: the answer never waits for the audit trail."""
        evidence = {
            "user_agent": request.headers.get("User-Agent", ""),
            "event": request.headers.get("X-CS-Event", ""),
        }
        self.rejections.add(self.ctx.clock.now(), request.remote or "unknown", why, size, evidence)
        log.debug("webhook refused from %s: %s", request.remote, why.reason)

    async def _flush_loop(self) -> None:
        while True:
            await self.ctx.clock.sleep_until(self.rejections.window_end(self.ctx.clock.now()))
            try:
                await self.flush_rejections()
            except Exception:  # a bug here must not stop counting: the next window retries
                log.exception("flushing refused-request counts failed")

    async def flush_rejections(self, *, final: bool = False) -> int:
        """Audit every count whose window has ended (``final``: every count); returns how
        many were recorded.  One that cannot be stored stays for the next flush."""
        entries = self.rejections.pending() if final else self.rejections.due(self.ctx.clock.now())
        recorded = 0
        for entry in entries:
            try:
                await self._audit(entry)
            except Exception as error:  # NATS away or the audit stream full: keep counting
                log.error("could not audit %d refused webhook requests: %s", entry.count, error)
                break
            self.rejections.done(entry)
            recorded += 1
        return recorded

    async def _audit(self, entry: RejectCount) -> None:
        evidence: dict[str, Any] = {
            "remote": entry.source,
            "kind": entry.kind,
            "count": entry.count,
            "bytes": entry.bytes,
            "window_start": entry.start.isoformat(),
            "window_end": entry.end.isoformat(),
            **entry.evidence,
        }
        await self.ctx.auditor.emit(
            action_key=reject_audit_key(self._instance, entry),
            decision="reject-webhook",
            reason=(
                f"{entry.count} webhook request(s) refused from {entry.source}: {entry.reason}"
            ),
            action="reject",
            outcome="skipped",
            evidence=evidence,
        )
        log.warning(
            "refused %d webhook request(s) from %s: %s", entry.count, entry.source, entry.reason
        )


def _answer(rejection: Rejection) -> web.Response:
    headers = {"Allow": "POST"} if rejection.status == 405 else None
    return web.Response(status=rejection.status, text=rejection.reason + "\n", headers=headers)


__all__ = ["WebhookReceiver"]
