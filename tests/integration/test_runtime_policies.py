"""Every service run by the runtime sees policy changes and the kill switch live."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel import FabricSettings
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import PolicyStore
from csfabric.kernel.policy._model import parse_document
from csfabric.kernel.service import ServiceContext, run_service

from tests.policykinds import TEST_KIND, register_test_kinds

pytestmark = pytest.mark.integration


def _doc(action: str) -> dict[str, object]:
    return {
        "apiVersion": "csfabric/v1",
        "kind": TEST_KIND,
        "metadata": {"name": "live"},
        "spec": {"action": action},
    }


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.01)


async def _until_gate(ctx: ServiceContext, outcome: str, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while (await ctx.gate.check(TEST_KIND, "live")).outcome != outcome:
            await asyncio.sleep(0.01)


async def test_a_running_service_sees_changes_and_the_kill_switch(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    register_test_kinds()
    settings = FabricSettings(nats_url=nats_server.url, state_dir=tmp_path)
    contexts: list[ServiceContext] = []

    async def setup(ctx: ServiceContext) -> None:
        contexts.append(ctx)

    stop = asyncio.Event()
    service = asyncio.create_task(run_service("live", setup, settings=settings, stop=stop))
    admin = await Bus.connect(nats_server.url, service="test-admin")
    store = PolicyStore(admin)
    try:
        await _until(lambda: bool(contexts))
        ctx = contexts[0]
        assert (await ctx.gate.check(TEST_KIND, "live")).outcome == "unknown-policy"

        await store.apply([parse_document(_doc("first"))], "os:tester")
        await _until_gate(ctx, "act")
        await store.apply([parse_document(_doc("second"))], "os:tester")

        def action() -> object:
            stored = ctx.policies.get(TEST_KIND, "live")
            return None if stored is None else stored.document["spec"]["action"]

        await _until(lambda: action() == "second", within=1.0)

        await store.pause_all("os:tester")
        await _until_gate(ctx, "paused", within=1.0)
        await store.resume_all("os:tester")
        await _until_gate(ctx, "act", within=1.0)
    finally:
        stop.set()
        await asyncio.wait_for(service, 15)
        await admin.close()
