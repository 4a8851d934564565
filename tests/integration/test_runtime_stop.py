"""A stop that lands in a service's setup stops it, even where setup swallows a cancellation.

Seen in ``csfabric dev``: SIGTERM arrived while a service's setup was inside a library call
that caught the first cancellation, so the service logged "started" after "stopping" and
ran on until the supervisor killed it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import FabricSettings
from csfabric.kernel.service import ServiceContext, run_service

pytestmark = pytest.mark.integration


async def test_a_setup_that_swallows_the_stop_is_cancelled_again(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    settings = FabricSettings(nats_url=nats_server.url, state_dir=tmp_path)
    stop = asyncio.Event()
    swallowed: list[str] = []
    stopped = asyncio.Event()

    async def setup(ctx: ServiceContext) -> None:
        stop.set()  # the operator's SIGTERM, while setup still runs
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:  # a library that catches the first cancellation
            swallowed.append("once")
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()

    await asyncio.wait_for(run_service("swallow", setup, settings=settings, stop=stop), 20)
    assert swallowed == ["once"]
    assert stopped.is_set()
