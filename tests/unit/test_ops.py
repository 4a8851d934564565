"""Metrics render with bounded labels, and the probes answer over a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from csfabric.kernel._metriclabels import SUBJECT_LABEL_SETS
from csfabric.kernel._ops import Metrics, OpsServer, subject_labels
from hypothesis import given
from hypothesis import strategies as st


def test_render_contains_the_series_after_use() -> None:
    metrics = Metrics("test-svc")
    metrics.event_in("csfabric.cloudstack.action.VM.CREATE")
    metrics.event_in("csfabric.cloudstack.action.VM.CREATE")
    metrics.event_out("csfabric.audit.test-svc")
    metrics.decision("scale_up")
    metrics.action("ok")
    metrics.dead_letter("EnvelopeError")
    metrics.set_lag("CLOUDSTACK", "autoscaler", 7)
    metrics.observe_handler("csfabric.cloudstack.action.VM.CREATE", 0.0003)

    text = metrics.render().decode()
    vm_create = 'category="action",family="cloudstack",service="test-svc",type="VM.CREATE"'
    assert f"csfabric_events_in_total{{{vm_create}}} 2.0" in text
    audit = 'category="",family="audit",service="test-svc",type=""'
    assert f"csfabric_events_out_total{{{audit}}} 1.0" in text
    assert 'csfabric_decisions_total{outcome="scale_up",service="test-svc"} 1.0' in text
    assert 'csfabric_actions_total{outcome="ok",service="test-svc"} 1.0' in text
    assert 'csfabric_dlq_total{reason="EnvelopeError",service="test-svc"} 1.0' in text
    assert (
        'csfabric_consumer_lag{consumer="autoscaler",service="test-svc",stream="CLOUDSTACK"} 7.0'
        in text
    )
    bucket = 'category="action",family="cloudstack",le="0.0005",service="test-svc"'
    assert f'csfabric_handler_seconds_bucket{{{bucket},type="VM.CREATE"}} 1.0' in text
    assert "subject=" not in text


@pytest.mark.parametrize(
    ("subject", "labels"),
    [
        ("csfabric.cloudstack.action.VM.CREATE", ("cloudstack", "action", "VM.CREATE")),
        ("csfabric.cloudstack.action.VM.HACKED", ("cloudstack", "action", "other")),
        ("csfabric.cloudstack.usage.VOLUME.DELETE", ("cloudstack", "usage", "VOLUME.DELETE")),
        (
            "csfabric.cloudstack.alert.ALERT.COMPUTE.HOST",
            ("cloudstack", "alert", "ALERT.COMPUTE.HOST"),
        ),
        (
            "csfabric.cloudstack.state.VirtualMachine.StopRequested",
            ("cloudstack", "state", "VirtualMachine"),
        ),
        ("csfabric.cloudstack.state.Gadget.Transition", ("cloudstack", "state", "other")),
        ("csfabric.cloudstack.state", ("cloudstack", "state", "other")),
        ("csfabric.cloudstack.job.X", ("cloudstack", "other", "other")),
        ("csfabric.cloudstack", ("cloudstack", "other", "other")),
        ("csfabric.lifecycle.environment.created", ("lifecycle", "", "environment.created")),
        ("csfabric.lifecycle.pony.adopted", ("lifecycle", "", "other")),
        ("csfabric.audit.snapshots", ("audit", "", "")),
        ("csfabric.alert.dns.failover", ("alert", "", "")),
        ("csfabric.control.sandbox", ("control", "", "")),
        ("csfabric.dlq.ingest", ("dlq", "", "")),
        ("csfabric.replay.r1.csfabric.cloudstack.action.VM.CREATE", ("replay", "", "")),
        ("csfabric.policy.SnapshotPolicy.nightly", ("policy", "", "")),
        ("cloudstack.webhook", ("cloudstack.webhook", "", "")),
        ("cloudstack.poll", ("cloudstack.poll", "", "")),
        ("kafka:cloudstack", ("kafka", "", "")),
        ("csfabric.nonsense.a", ("other", "", "")),
        ("something.else", ("other", "", "")),
        ("", ("other", "", "")),
    ],
)
def test_subject_labels(subject: str, labels: tuple[str, str, str]) -> None:
    assert subject_labels(subject) == labels
    assert labels in SUBJECT_LABEL_SETS


_TOKEN = st.text(min_size=0, max_size=12)
_SUBJECTS = st.one_of(
    st.text(max_size=80),
    st.lists(_TOKEN, max_size=8).map(".".join),
    st.tuples(
        st.sampled_from(["csfabric.cloudstack", "csfabric.lifecycle", "csfabric", "kafka:"]),
        st.sampled_from(["", ".action", ".usage", ".alert", ".state", ".x"]),
        st.lists(_TOKEN, max_size=5).map(".".join),
    ).map(lambda parts: f"{parts[0]}{parts[1]}.{parts[2]}"),
)


@given(_SUBJECTS)
def test_subject_labels_come_from_a_finite_set(subject: str) -> None:
    """Whatever a producer puts in a subject, its labels are one of a fixed few hundred."""
    assert subject_labels(subject) in SUBJECT_LABEL_SETS


def test_the_label_sets_stay_few() -> None:
    assert len(SUBJECT_LABEL_SETS) < 300


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
