"""CloudStack's webhook deliveries (4.20+) → the pipeline, over one long-lived aiohttp server.

CloudStack tries a delivery three times (10 s timeout each, no backoff) and counts only a
200, so the answer must be fast and honest: 200 only after the event is stored (or known
to be stored, or CloudStack's test ping, or dead-lettered — a malformed body would fail
the same way on every retry), 503 when NATS cannot take it (a retry may succeed), 401 for
a missing or forged ``X-CS-Signature`` (audited, with the sender's address), 413 for a body
over the limit (refused while reading, never buffered whole), 405 for anything but POST.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from csfabric.cloudstack.parse import NativeMessage
from csfabric.kernel.logs import register_secret
from csfabric.kernel.runtime import ServiceContext

from .logic import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_STATUS,
    Rejection,
    check_request,
    check_signature,
    reject_audit_key,
)
from .pipeline import Pipeline
from .settings import IngestSettings

log = logging.getLogger(__name__)

# Only what the parser and the audit trail use travels on; the signature stays here.
_KEPT_HEADERS = (EVENT_ID_HEADER, "X-CS-Event", "User-Agent")


class WebhookReceiver:
    """``POST <webhook_path>`` on ``webhook_host:webhook_port``; ``start`` then ``stop``."""

    def __init__(self, ctx: ServiceContext, pipeline: Pipeline, settings: IngestSettings) -> None:
        self.ctx, self.pipeline, self.settings = ctx, pipeline, settings
        self.secret = settings.webhook_secret()
        if self.secret is not None:
            register_secret(self.secret.decode(errors="replace"))
        self.max_bytes = settings.webhook_max_bytes
        self._runner: web.AppRunner | None = None
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
        # No access log: at hundreds of deliveries a second it would cost more than the work.
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.webhook_host, self.settings.webhook_port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("webhook receiver on %s", self.url, extra={"signed": self.secret is not None})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        refused = check_request(request.method, request.content_length, self.max_bytes)
        if refused is not None:
            return _answer(refused)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _answer(Rejection(413, f"body exceeds {self.max_bytes} bytes"))
        forged = check_signature(self.secret, body, request.headers.get(SIGNATURE_HEADER))
        if forged is not None:
            await self._audit_rejection(request, body, forged)
            return _answer(forged)
        headers = {k: v for k in _KEPT_HEADERS if (v := request.headers.get(k)) is not None}
        msg = NativeMessage(body=body, transport="webhook", headers=headers)
        try:
            # Bounded below CloudStack's 10 s: a clear 503 beats its timeout, and a publish
            # cut short here is harmless (its retry carries the same Nats-Msg-Id).
            async with asyncio.timeout(self.settings.webhook_timeout):
                outcome = await self.pipeline.ingest(msg)
        except Exception as error:  # not stored: CloudStack's retry may find NATS back
            log.warning("webhook delivery not stored: %s", type(error).__name__)
            return web.Response(status=503, text="not stored, retry\n")
        return web.Response(status=WEBHOOK_STATUS[outcome], text=f"{outcome}\n")

    async def _audit_rejection(self, request: web.Request, body: bytes, why: Rejection) -> None:
        remote = request.remote or "unknown"
        try:
            await self.ctx.auditor.emit(
                action_key=reject_audit_key(remote, body),
                decision="reject-webhook",
                reason=f"{why.reason}; from {remote}",
                action="reject",
                outcome="skipped",
                evidence={
                    "remote": remote,
                    "bytes": len(body),
                    "user_agent": request.headers.get("User-Agent", ""),
                    "event": request.headers.get("X-CS-Event", ""),
                },
            )
        except Exception as error:  # the 401 stands even when the audit trail is away
            log.error("could not audit a rejected webhook from %s: %s", remote, error)
        log.warning("webhook refused from %s: %s", remote, why.reason)


def _answer(rejection: Rejection) -> web.Response:
    headers = {"Allow": "POST"} if rejection.status == 405 else None
    return web.Response(status=rejection.status, text=rejection.reason + "\n", headers=headers)


__all__ = ["WebhookReceiver"]
