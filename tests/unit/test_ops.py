"""Metrics render, and the probes answer over a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from csfabric.kernel.ops import Metrics, OpsServer


def test_render_contains_the_series_after_use() -> None:
    metrics = Metrics("test-svc")
    metrics.event_in("cloudstack.vm.create")
    metrics.event_in("cloudstack.vm.create")
    metrics.event_out("csfabric.decision")
    metrics.decision("scale_up")
    metrics.action("ok")
    metrics.dead_letter("EnvelopeError")
    metrics.set_lag("CLOUDSTACK", "autoscaler", 7)
    metrics.observe_handler("cloudstack.vm.create", 0.0003)

    text = metrics.render().decode()
    assert 'csfabric_events_in_total{service="test-svc",subject="cloudstack.vm.create"} 2.0' in text
    assert 'csfabric_events_out_total{service="test-svc",subject="csfabric.decision"} 1.0' in text
    assert 'csfabric_decisions_total{outcome="scale_up",service="test-svc"} 1.0' in text
    assert 'csfabric_actions_total{outcome="ok",service="test-svc"} 1.0' in text
    assert 'csfabric_dlq_total{reason="EnvelopeError",service="test-svc"} 1.0' in text
    assert (
        'csfabric_consumer_lag{consumer="autoscaler",service="test-svc",stream="CLOUDSTACK"} 7.0'
        in text
    )
    assert 'csfabric_handler_seconds_bucket{le="0.0005",service="test-svc"' in text


def test_registries_are_independent() -> None:
    first, second = Metrics("a"), Metrics("b")
    first.event_in("s")
    assert "csfabric_events_in_total{" not in second.render().decode()


@pytest_asyncio.fixture
async def server() -> AsyncIterator[OpsServer]:
    metrics = Metrics("test-svc")
    metrics.event_in("cloudstack.vm.create")
    server = OpsServer(metrics)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_probes_and_metrics_over_http(server: OpsServer) -> None:
    broker_up = False

    async def broker() -> tuple[bool, str]:
        return broker_up, "" if broker_up else "nats not connected"

    async def always() -> bool:
        return True

    server.add_readiness_check("broker", broker)
    server.add_readiness_check("always", always)
    assert server.port != 0

    async with aiohttp.ClientSession(base_url=server.url) as http:
        async with http.get("/livez") as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "ok"}

        async with http.get("/readyz") as resp:
            assert resp.status == 503
            body = await resp.json()
            assert body["failing"] == {"broker": "nats not connected"}

        broker_up = True
        async with http.get("/readyz") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "ok"

        async with http.get("/metrics") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            assert "csfabric_events_in_total" in await resp.text()


async def test_a_raising_or_slow_check_is_a_failing_check() -> None:
    server = OpsServer(Metrics("test-svc"), check_timeout=0.05)

    async def raises() -> bool:
        raise ConnectionError("refused: http://x/?apikey=XYZ")

    async def hangs() -> bool:
        await asyncio.sleep(10)
        return True

    server.add_readiness_check("raises", raises)
    server.add_readiness_check("hangs", hangs)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/readyz") as resp:
            assert resp.status == 503
            failing = (await resp.json())["failing"]
    finally:
        await server.stop()
    assert failing["raises"] == "ConnectionError: refused: http://x/?apikey=***"
    assert failing["hangs"].startswith("no answer within")
