"""Prometheus metrics and liveness/readiness probes on one small HTTP port per service.

Each :class:`Metrics` owns its registry instead of using prometheus_client's global one,
so tests (and several services in one ``csfabric dev`` process) can each have their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from csfabric.kernel._logs import clip
from csfabric.kernel._metriclabels import CappedLabel, subject_labels

# Handlers range from sub-millisecond pure logic to multi-second CloudStack calls.
HANDLER_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# Labels of the per-subject series: bounded (see :mod:`._metriclabels`), never the subject.
SUBJECT_LABELS = ("service", "family", "category", "type")
# Distinct error class names kept in ``csfabric_dlq``; more are counted as ``other``.
DLQ_REASON_CAP = 32

# Per-event series are looked up by subject through a bounded cache of their children.
_CHILDREN_CACHED = 4096

ReadinessResult = bool | tuple[bool, str]
ReadinessCheck = Callable[[], Awaitable[ReadinessResult]]


class Metrics:
    """The fabric's metrics for one service; every series carries ``service``."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._events_in = Counter(
            "csfabric_events_in", "Events consumed", SUBJECT_LABELS, registry=r
        )
        self._events_out = Counter(
            "csfabric_events_out", "Events published", SUBJECT_LABELS, registry=r
        )
        self._decisions = Counter(
            "csfabric_decisions", "Decisions taken", ["service", "outcome"], registry=r
        )
        self._actions = Counter(
            "csfabric_actions", "Actions carried out", ["service", "outcome"], registry=r
        )
        self._dlq = Counter(
            "csfabric_dlq",
            "Messages dead-lettered, by error class",
            ["service", "reason"],
            registry=r,
        )
        self._lag = Gauge(
            "csfabric_consumer_lag",
            "Messages pending for a consumer (num_pending)",
            ["service", "stream", "consumer"],
            registry=r,
        )
        self._stream_fill = Gauge(
            "csfabric_stream_fill_ratio",
            "How full a stream is: the larger of bytes/max_bytes and messages/max_msgs",
            ["service", "stream"],
            registry=r,
        )
        self._handler = Histogram(
            "csfabric_handler_seconds",
            "Handler run time",
            SUBJECT_LABELS,
            buckets=HANDLER_BUCKETS,
            registry=r,
        )
        self._dlq_reason = CappedLabel(DLQ_REASON_CAP)
        self._children: dict[tuple[int, str], Any] = {}

    def _child(self, family: Counter | Histogram, subject: str) -> Any:
        """``family.labels(service, *subject_labels(subject))``, cached: it runs per event."""
        key = (id(family), subject)
        child = self._children.get(key)
        if child is None:
            if len(self._children) >= _CHILDREN_CACHED:
                self._children.clear()
            child = family.labels(self.service, *subject_labels(subject))
            self._children[key] = child
        return child

    def event_in(self, subject: str) -> None:
        """Count a consumed message; ``subject`` (or a feed name) becomes bounded labels."""
        self._child(self._events_in, subject).inc()

    def event_out(self, subject: str) -> None:
        self._child(self._events_out, subject).inc()

    def decision(self, outcome: str) -> None:
        self._decisions.labels(self.service, outcome).inc()

    def action(self, outcome: str) -> None:
        self._actions.labels(self.service, outcome).inc()

    def dead_letter(self, reason: str) -> None:
        """``reason`` is an error class name, never a message; past the first
        :data:`DLQ_REASON_CAP` distinct ones (or a malformed one) it counts as ``other``."""
        self._dlq.labels(self.service, self._dlq_reason(reason)).inc()

    def set_lag(self, stream: str, consumer: str, value: float) -> None:
        self._lag.labels(self.service, stream, consumer).set(value)

    def set_stream_fill(self, stream: str, ratio: float) -> None:
        """``stream`` is a contract stream name: a fixed, small label set."""
        self._stream_fill.labels(self.service, stream).set(ratio)

    def observe_handler(self, subject: str, seconds: float) -> None:
        self._child(self._handler, subject).observe(seconds)

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)


class OpsServer:
    """``/metrics``, ``/livez`` and ``/readyz`` on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        check_timeout: float = 5.0,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self._port = port
        self._check_timeout = check_timeout
        self._checks: dict[str, ReadinessCheck] = {}
        self._runner: web.AppRunner | None = None

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """``check`` returns ``True``, or ``(False, reason)``; raising also means not ready."""
        self._checks[name] = check

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        # Probes hit these every few seconds; an access log line each would drown the logs.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.host, self._port).start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _livez(self, _: web.Request) -> web.Response:
        # Answering at all proves the event loop is not blocked, which is all liveness means.
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run_check(self._checks[n]) for n in names))
        failing = {
            name: reason for name, (ok, reason) in zip(names, results, strict=True) if not ok
        }
        if failing:
            return web.json_response({"status": "unavailable", "failing": failing}, status=503)
        return web.json_response({"status": "ok", "checks": names})

    async def _run_check(self, check: ReadinessCheck) -> tuple[bool, str]:
        try:
            result = await asyncio.wait_for(check(), self._check_timeout)
        except TimeoutError:
            return False, f"no answer within {self._check_timeout:g}s"
        except Exception as exc:  # a probe reports failures, it never raises them
            # Errors can quote a URL with credentials; the probe body is unauthenticated.
            return False, clip(f"{type(exc).__name__}: {exc}", 500, one_line=True)
        if isinstance(result, tuple):
            ok, reason = result
            return bool(ok), clip(reason, 500, one_line=True) if not ok else ""
        return bool(result), "" if result else "check returned False"


__all__ = [
    "DLQ_REASON_CAP",
    "HANDLER_BUCKETS",
    "SUBJECT_LABELS",
    "Metrics",
    "OpsServer",
    "ReadinessCheck",
    "ReadinessResult",
    "subject_labels",
]
