"""How a service process runs: settings, logs, traces, bus, ops port, and a clean stop.

A service's ``setup(ctx)`` starts its consumers and background work, registers how to stop
them (:meth:`ServiceContext.on_stop`, :meth:`ServiceContext.spawn`) and returns.
:func:`run_service` then waits for SIGTERM, SIGINT or SIGHUP and stops everything in reverse
order, so in-flight messages are acked or naked before the NATS connection drains.
A background task that dies ends the process with an error: a supervisor (``csfabric
dev``, systemd, Kubernetes) restarts it, which is better than a half-alive service.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from csfabric.kernel._audit import Auditor
from csfabric.kernel._clock import Clock, parse_clock
from csfabric.kernel._heartbeat import Heartbeat
from csfabric.kernel._logs import get_logger, register_secret, setup_logging
from csfabric.kernel._ops import Metrics, OpsServer, ReadinessResult
from csfabric.kernel._settings import CsfabricSettings, FabricSettings
from csfabric.kernel._tracing import setup_tracing
from csfabric.kernel.bus import Bus, Consumer, ConsumerOptions, Handler
from csfabric.kernel.policy import ActionGate, PolicyWatcher
from csfabric.kernel.service._registry import ServiceSetup

log = get_logger(__name__)
# Closing the terminal that runs `csfabric run` (SIGHUP) stops as cleanly as Ctrl-C.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

StopCallback = Callable[[], Awaitable[object]]


class RuntimeSettings(CsfabricSettings):
    """Where the ops server listens: ``CSFABRIC_OPS_HOST`` / ``CSFABRIC_OPS_PORT``."""

    ops_host: str = "127.0.0.1"
    ops_port: int = Field(0, ge=0, le=65535, description="0 picks a free port")
    stop_timeout: float = Field(10.0, gt=0, description="seconds each stop step may take")


@dataclass
class ServiceContext:
    """Everything a service's ``setup`` gets."""

    name: str
    settings: FabricSettings
    clock: Clock
    bus: Bus
    metrics: Metrics
    auditor: Auditor
    ops: OpsServer
    policies: PolicyWatcher
    gate: ActionGate
    # What an operator must know about this instance (e.g. "accepts unsigned webhooks"):
    # carried in its heartbeat, so `csfabric status` shows it.
    warnings: list[str] = field(default_factory=list)
    _stops: list[StopCallback] = field(default_factory=list)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def on_stop(self, callback: StopCallback) -> None:
        """Await ``callback()`` at shutdown (last registered runs first), e.g. ``consumer.stop``."""
        self._stops.append(callback)

    async def consume(
        self,
        subject: str,
        durable: str,
        handler: Handler[Any],
        *,
        decode: Callable[[bytes], Any] | None = None,
        **options: Any,
    ) -> Consumer[Any]:
        """Start a consumer whose options follow the settings (``CSFABRIC_MAX_DELIVER``, …;
        ``options`` override them); it is stopped at shutdown."""
        opts = ConsumerOptions.from_settings(self.settings, **options)
        consumer: Consumer[Any] = Consumer(self.bus, subject, durable, handler, opts, decode=decode)
        await consumer.start()
        self.on_stop(consumer.stop)
        return consumer

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``work`` until shutdown cancels it; if it ends before that, the service exits."""
        task = asyncio.create_task(work, name=f"{self.name}:{name}")
        self._tasks.append(task)
        return task

    async def close(self, timeout: float) -> None:  # noqa: ASYNC109
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for callback in reversed(self._stops):
            try:
                await asyncio.wait_for(callback(), timeout)
            except Exception:  # one stuck or failing part must not keep the rest running
                log.exception("stopping %s failed", getattr(callback, "__qualname__", callback))


async def run_service(
    name: str,
    setup: ServiceSetup,
    *,
    settings: FabricSettings | None = None,
    ops_port: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run one service until SIGTERM/SIGINT/SIGHUP (or ``stop`` is set, for tests)."""
    settings = settings or FabricSettings()
    runtime = RuntimeSettings()
    setup_logging(name, settings.log_level)
    for secret in (settings.cloudstack_key, settings.cloudstack_secret):
        if secret is not None:
            register_secret(secret.get_secret_value())
    setup_tracing(name, settings.otlp_endpoint)
    clock = parse_clock(settings.clock)
    metrics = Metrics(name)
    stop = stop or asyncio.Event()
    bus: Bus | None = None
    ctx: ServiceContext | None = None

    async def nats_ready() -> ReadinessResult:
        return True if bus is not None and bus.nc.is_connected else (False, "no NATS connection")

    async def serve(ops: OpsServer) -> None:
        nonlocal bus, ctx
        bus = await Bus.connect(service=name, settings=settings, clock=clock, metrics=metrics)
        # Every service sees policy changes and the kill switch live, before its setup runs.
        policies = PolicyWatcher(bus)
        await policies.start()
        ctx = ServiceContext(
            name, settings, clock, bus, metrics, Auditor(bus), ops, policies, ActionGate(policies)
        )
        ctx.on_stop(policies.stop)
        await setup(ctx)
        # Announced only once set up, and withdrawn first at shutdown (on_stop runs last
        # registered first), so `csfabric status` lists services that are really running.
        heartbeat = Heartbeat(bus, name, ops_url=ops.url, warnings=ctx.warnings)
        await heartbeat.start()
        ctx.on_stop(heartbeat.stop)
        log.info("%s started", name, extra={"ops_url": ops.url, "clock": clock.spec})
        await _watch(ctx._tasks)

    # The ops port comes first, so /livez answers while NATS is still being reached.
    ops = OpsServer(metrics, host=runtime.ops_host, port=_pick(ops_port, runtime.ops_port))
    ops.add_readiness_check("nats", nats_ready)
    await ops.start()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    # A signal must also interrupt connecting (which retries forever) and setup.
    body = asyncio.create_task(serve(ops), name=f"{name}:serve")
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({body, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if body.done():
            body.result()  # only ever ends by raising
        log.info("%s stopping", name)
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        stopper.cancel()
        await _cancel(body, runtime.stop_timeout)
        await asyncio.gather(stopper, return_exceptions=True)
        if ctx is not None:
            await ctx.close(runtime.stop_timeout)
        await ops.stop()
        if bus is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bus.close(), runtime.stop_timeout)


async def _cancel(task: asyncio.Task[Any], grace: float) -> None:
    """Cancel ``task`` and wait for it, cancelling again while it goes on.

    A stop can land anywhere in a service's setup, and code there that swallows one
    cancellation (a library's retry loop that catches it) would otherwise keep the process
    running after SIGTERM until a supervisor kills it.
    """
    deadline = asyncio.get_running_loop().time() + grace
    while not task.done():
        task.cancel()
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            log.warning("%s did not stop within %gs of being cancelled", task.get_name(), grace)
            return
        await asyncio.wait({task}, timeout=min(left, 0.5))
    with contextlib.suppress(BaseException):
        task.result()


def _pick(flag: int | None, configured: int) -> int:
    return configured if flag is None else flag


async def _watch(tasks: list[asyncio.Task[Any]]) -> None:
    """Raise once a spawned task has ended; the list may grow after setup."""
    while True:
        for task in tasks:
            if task.done():
                error = None if task.cancelled() else task.exception()
                raise RuntimeError(f"background task {task.get_name()} ended") from error
        await asyncio.sleep(0.5)


__all__ = ["RuntimeSettings", "ServiceContext", "StopCallback", "run_service"]
