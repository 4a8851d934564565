"""The CloudStack client against a scripted in-process stub on a loopback port.

The stub checks every request's v3 signature the way CloudStack does, answers from a
per-command script, and counts requests in flight, so retries, paging, job polling, the
rate limit and the concurrency cap are all observed from the server's side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from cs.client import CloudStack
from csfabric.cloudstack import (
    CloudStackApiError,
    CloudStackClient,
    CloudStackJobTimeout,
    CloudStackOutcomeUnknown,
    CloudStackSettings,
    CloudStackTransientError,
    JobResult,
    Zone,
)
from csfabric.cloudstack._transport import is_read_only, sign
from csfabric.kernel import (
    ConfigError,
    Metrics,
    OutcomeUnknownError,
    PermanentError,
    SteppedClock,
    TransientError,
)
from csfabric.kernel._tracing import setup_tracing
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.servers import free_port

KEY = "test-api-key-7f3a9c"
SECRET = "test-secret-key+/=b81e"


@dataclass
class Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)  # the inner object
    delay: float = 0.0  # seconds before answering (wall time)
    raw: str | None = None  # a body not in CloudStack's shape (a proxy's page)


def error(code: int, text: str = "boom", cscode: int = 4350) -> Reply:
    inner = {"uuidList": [], "errorcode": code, "cserrorcode": cscode, "errortext": text}
    return Reply(code, inner)


class Stub:
    """A CloudStack endpoint that plays a script per command (the last reply repeats)."""

    def __init__(self) -> None:
        self.script: dict[str, list[Reply]] = {}
        self.requests: list[dict[str, str]] = []
        self.signatures: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def on(self, command: str, *replies: Reply) -> None:
        self.script[command] = list(replies)

    def count(self, command: str) -> int:
        return sum(1 for r in self.requests if r["command"] == command)

    async def handle(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        signature = params.pop("signature")
        assert signature == sign(params, SECRET), "bad signature"
        assert params["apiKey"] == KEY
        assert params["signatureVersion"] == "3"
        self.requests.append(params)
        self.signatures.append(signature)
        command = params["command"]
        replies = self.script.get(command) or [error(432, "The given command does not exist")]
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(reply.delay)
        finally:
            self.in_flight -= 1
        body = {f"{command.lower()}response": reply.body}
        text = json.dumps(body) if reply.raw is None else reply.raw
        return web.Response(status=reply.status, text=text, content_type="application/json")


@pytest_asyncio.fixture
async def stub() -> AsyncIterator[tuple[Stub, str]]:
    stub = Stub()
    app = web.Application()
    app.router.add_get("/client/api", stub.handle)
    # No access log: it is the stub's (server side) and would print the signed URLs.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield stub, f"http://127.0.0.1:{port}/client/api"
    finally:
        await runner.cleanup()


def settings(endpoint: str, **overrides: Any) -> CloudStackSettings:
    values: dict[str, Any] = {
        "endpoint": endpoint,
        "key": KEY,
        "secret": SECRET,
        "timeout": 2.0,
        "retry_backoff": 0.001,
        "max_retries": 3,
        "poll_interval": 0.01,
        "rate_limit_per_second": None,
        **overrides,
    }
    return CloudStackSettings(**values)


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    setup_tracing("test-cloudstack-client", exporter=exporter)
    return exporter


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


def test_signature_matches_cs() -> None:
    params = {"command": "listTags", "apiKey": KEY, "b": "x y+z/*~é", "A": "1", "t[0].k": "a:b"}
    expected = dict(params)
    CloudStack("http://127.0.0.1/client/api", KEY, SECRET)._sign(expected)
    assert sign(params, SECRET) == expected["signature"]


def test_missing_keys_are_a_config_error() -> None:
    with pytest.raises(ConfigError):
        CloudStackClient(CloudStackSettings(endpoint="http://127.0.0.1:1/client/api"))


async def test_call_sends_signed_v3_json_and_unwraps(stub: tuple[Stub, str]) -> None:
    server, url = stub
    server.on("listZones", Reply(body={"count": 1, "zone": [{"id": "z1", "name": "zone-london"}]}))
    async with CloudStackClient(settings(url)) as client:
        answer = await client.call("listZones", available=True, tags={"key": "tier"})
    assert answer == {"count": 1, "zone": [{"id": "z1", "name": "zone-london"}]}
    sent = server.requests[0]
    assert sent["response"] == "json"
    assert sent["available"] == "true"
    assert sent["tags[0].key"] == "tier"  # cs's transform of a map parameter
    assert sent["expires"].endswith("+0000")


async def test_530_is_retried_until_success(stub: tuple[Stub, str]) -> None:
    server, url = stub
    server.on("listZones", error(530), error(530), Reply(body={}))
    async with CloudStackClient(settings(url)) as client:
        assert await client.call("listZones") == {}
    assert server.count("listZones") == 3


async def test_timeouts_are_retried(stub: tuple[Stub, str]) -> None:
    server, url = stub
    server.on("listZones", Reply(delay=1.0), Reply(body={"count": 0}))
    async with CloudStackClient(settings(url, timeout=0.1)) as client:
        assert await client.call("listZones") == {"count": 0}
    assert server.count("listZones") == 2


async def test_transient_gives_up_after_max_retries(stub: tuple[Stub, str]) -> None:
    server, url = stub
    server.on("listVolumes", error(535, "resource unavailable"))
    async with CloudStackClient(settings(url, max_retries=2)) as client:
        with pytest.raises(CloudStackTransientError) as caught:
            await client.call("listVolumes")
    assert isinstance(caught.value, TransientError)
    assert caught.value.errorcode == 535
    assert caught.value.errortext == "resource unavailable"
    assert server.count("listVolumes") == 3


async def test_connection_refused_is_transient() -> None:
    url = f"http://127.0.0.1:{free_port()}/client/api"
    async with CloudStackClient(settings(url, max_retries=1)) as client:
        with pytest.raises(CloudStackTransientError) as caught:
            await client.call("listZones")
    assert caught.value.errorcode is None
    assert KEY not in str(caught.value)
    assert "signature" not in str(caught.value)


@pytest.mark.parametrize("code", [401, 431, 432])
async def test_refusals_are_permanent_at_once(stub: tuple[Stub, str], code: int) -> None:
    server, url = stub
    server.on("createSnapshot", error(code, "unable to verify", cscode=9999))
    async with CloudStackClient(settings(url)) as client:
        with pytest.raises(CloudStackApiError) as caught:
            await client.call("createSnapshot", volumeid="v1")
    err = caught.value
    assert isinstance(err, PermanentError)
    assert (err.errorcode, err.cserrorcode, err.errortext) == (code, 9999, "unable to verify")
    assert server.count("createSnapshot") == 1


async def test_retry_backoff_sleeps_through_the_clock(stub: tuple[Stub, str]) -> None:
    server, url = stub
    server.on("listZones", error(530), Reply(body={"count": 0}))
    clock = SteppedClock()
    async with CloudStackClient(settings(url, retry_backoff=5.0), clock=clock) as client:
        task = asyncio.create_task(client.call("listZones"))
        while clock.sleepers == 0:
            await asyncio.sleep(0.01)
        assert not task.done()
        assert server.count("listZones") == 1
        await clock.advance(10)
        assert await task == {"count": 0}


async def test_list_collects_every_page(stub: tuple[Stub, str]) -> None:
    server, url = stub
    zones = [{"id": f"z{i}", "name": f"zone-{i}", "tags": []} for i in range(7)]
    server.on(
        "listZones",
        Reply(body={"count": 7, "zone": zones[0:3]}),
        Reply(body={"count": 7, "zone": zones[3:6]}),
        Reply(body={"count": 7, "zone": zones[6:]}),
    )
    async with CloudStackClient(settings(url, page_size=3)) as client:
        typed = await client.list_zones()
    assert [z.id for z in typed] == [z["id"] for z in zones]
    assert all(isinstance(z, Zone) for z in typed)
    assert [r["page"] for r in server.requests] == ["1", "2", "3"]
    assert {r["pagesize"] for r in server.requests} == {"3"}


async def test_empty_list_shape(stub: tuple[Stub, str]) -> None:
    server, url = stub
    server.on("listVirtualMachines", Reply(body={}))
    async with CloudStackClient(settings(url)) as client:
        assert await client.list_virtual_machines(zoneid="z1") == []


async def test_job_is_polled_to_success(stub: tuple[Stub, str]) -> None:
    server, url = stub
    vm = {"id": "vm1", "name": "web-1", "state": "Running", "created": "2024-11-28T09:15:00+0100"}
    server.on("deployVirtualMachine", Reply(body={"id": "vm1", "jobid": "j1"}))
    server.on(
        "queryAsyncJobResult",
        Reply(body={"jobid": "j1", "jobstatus": 0}),
        Reply(body={"jobid": "j1", "jobstatus": 0}),
        Reply(body={"jobid": "j1", "jobstatus": 1, "jobresultcode": 0,
                    "jobresult": {"virtualmachine": vm}}),
    )  # fmt: skip
    clock = SteppedClock()
    async with CloudStackClient(settings(url, poll_interval=2.0), clock=clock) as client:
        task = asyncio.create_task(client.job("deployVirtualMachine", zoneid="z1"))
        while not task.done():
            await asyncio.sleep(0.01)
            await clock.advance_to_next()
        result = task.result()
    assert result.ok
    assert result.resource_id == "vm1"
    assert result.payload == vm
    assert result.raise_for_status() is result
    assert server.count("queryAsyncJobResult") == 3


@pytest.mark.parametrize(("code", "raised"), [(530, TransientError), (431, PermanentError)])
async def test_failed_job_returns_its_error(
    stub: tuple[Stub, str], code: int, raised: type[Exception]
) -> None:
    server, url = stub
    server.on("createSnapshot", Reply(body={"id": "s1", "jobid": "j2"}))
    failure = {"errorcode": code, "cserrorcode": 4250, "errortext": "Failed to create snapshot"}
    server.on(
        "queryAsyncJobResult",
        Reply(body={"jobid": "j2", "jobstatus": 2, "jobresultcode": 530, "jobresult": failure}),
    )
    async with CloudStackClient(settings(url)) as client:
        result = await client.job("createSnapshot", volumeid="v1")
    assert isinstance(result, JobResult)
    assert result.status == "failed"
    assert result.error is not None
    assert (result.error.errorcode, result.error.errortext) == (code, "Failed to create snapshot")
    with pytest.raises(raised):
        result.raise_for_status()


async def test_job_timeout_is_transient(stub: tuple[Stub, str]) -> None:
    server, url = stub
    server.on("deleteSnapshot", Reply(body={"jobid": "j3"}))
    server.on("queryAsyncJobResult", Reply(body={"jobid": "j3", "jobstatus": 0}))
    clock = SteppedClock()
    options = settings(url, poll_interval=1.0, job_timeout=3.0)
    async with CloudStackClient(options, clock=clock) as client:
        task = asyncio.create_task(client.job("deleteSnapshot", id="s1"))
        while not task.done():
            await asyncio.sleep(0.01)
            await clock.advance_to_next()
        with pytest.raises(CloudStackJobTimeout) as caught:
            task.result()
    assert caught.value.jobid == "j3"
    assert isinstance(caught.value, CloudStackOutcomeUnknown)  # the job may still finish
    assert server.count("queryAsyncJobResult") == 4  # at t = 0, 1, 2, 3


async def test_concurrency_cap_holds_at_the_server(stub: tuple[Stub, str]) -> None:
    server, url = stub
    server.on("listZones", Reply(body={}, delay=0.05))
    async with CloudStackClient(settings(url, max_concurrency=3)) as client:
        await asyncio.gather(*(client.call("listZones") for _ in range(15)))
    assert server.max_in_flight == 3


async def test_rate_limit_spaces_requests(stub: tuple[Stub, str]) -> None:
    server, url = stub
    server.on("listZones", Reply(body={}))
    async with CloudStackClient(settings(url, rate_limit_per_second=20.0)) as client:
        started = time.monotonic()
        await asyncio.gather(*(client.call("listZones") for _ in range(30)))
        elapsed = time.monotonic() - started
    # A burst of 20, then 10 more at 20/s.
    assert elapsed >= 0.45


async def test_spans_metrics_and_logs_never_hold_secrets(
    stub: tuple[Stub, str], spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server, url = stub
    server.on("listZones", error(530), Reply(body={"count": 0}))
    server.on("createTags", error(431, "Unable to execute API command createtags"))
    metrics = Metrics("test-svc")
    async with CloudStackClient(settings(url), metrics=metrics) as client:
        await client.call("listZones")
        with pytest.raises(CloudStackApiError):
            await client.call("createTags", resourceids="vm1", resourcetype="UserVm")

    by_name = {span.name: span for span in spans.get_finished_spans()}
    ok, refused = by_name["cloudstack listZones"], by_name["cloudstack createTags"]
    assert ok.attributes is not None
    assert refused.attributes is not None
    assert ok.attributes["cloudstack.command"] == "listZones"
    assert ok.attributes["cloudstack.outcome"] == "success"
    assert ok.attributes["cloudstack.attempts"] == 2
    assert [event.name for event in ok.events] == ["retry"]
    assert refused.attributes["cloudstack.outcome"] == "permanent"
    assert refused.attributes["cloudstack.errorcode"] == 431

    secrets = [KEY, SECRET, *server.signatures]
    texts = [
        str(value)
        for span in spans.get_finished_spans()
        for attrs in [span.attributes, *(event.attributes for event in span.events)]
        for value in (attrs or {}).values()
    ]
    texts += [record.getMessage() for record in caplog.records]
    texts += [str(record.__dict__) for record in caplog.records]
    assert any("retry 1/3" in text for text in texts)  # the retry was logged
    assert not [text for text in texts if any(secret in text for secret in secrets)]

    rendered = metrics.render().decode()
    series = "csfabric_cloudstack_call_seconds_count"
    assert f'{series}{{command="listZones",outcome="success",service="test-svc"}} 1.0' in rendered
    assert (
        f'{series}{{command="createTags",outcome="permanent",service="test-svc"}} 1.0' in rendered
    )
    assert SECRET not in rendered
    assert KEY not in rendered


@pytest.mark.parametrize(
    ("command", "read_only"),
    [
        ("listZones", True),
        ("queryAsyncJobResult", True),
        ("findHostsForMigration", True),
        ("getVMPassword", True),
        ("getUploadParamsForVolume", False),  # allocates the volume it names
        ("createSnapshot", False),
        ("deployVirtualMachine", False),
        ("createTags", False),
        ("deleteSnapshot", False),
    ],
)
def test_read_only_commands(command: str, read_only: bool) -> None:
    assert is_read_only(command) is read_only


async def test_a_mutating_command_that_timed_out_is_not_sent_again(
    stub: tuple[Stub, str],
) -> None:
    server, url = stub
    server.on("createSnapshot", Reply(delay=1.0), Reply(body={"id": "s1", "jobid": "j1"}))
    async with CloudStackClient(settings(url, timeout=0.2)) as client:
        with pytest.raises(CloudStackOutcomeUnknown) as caught:
            await client.call("createSnapshot", volumeid="v1")
    assert isinstance(caught.value, OutcomeUnknownError)
    assert isinstance(caught.value, CloudStackTransientError)
    assert "outcome unknown" in str(caught.value)
    assert server.count("createSnapshot") == 1


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_a_proxy_error_on_a_mutating_command_is_an_unknown_outcome(
    stub: tuple[Stub, str], status: int
) -> None:
    server, url = stub
    server.on("createTags", Reply(status, raw="<html>Gateway Timeout</html>"))
    async with CloudStackClient(settings(url)) as client:
        with pytest.raises(CloudStackOutcomeUnknown):
            await client.call("createTags", resourceids="v1", resourcetype="Volume")
    assert server.count("createTags") == 1


async def test_a_proxy_error_on_a_read_is_retried(stub: tuple[Stub, str]) -> None:
    server, url = stub
    server.on("listTags", Reply(504, raw="<html>Gateway Timeout</html>"), Reply(body={}))
    async with CloudStackClient(settings(url)) as client:
        assert await client.call("listTags") == {}
    assert server.count("listTags") == 2


async def test_cloudstack_errors_on_a_mutating_command_are_retried(
    stub: tuple[Stub, str],
) -> None:
    # CloudStack answered 530/503 in its own shape: the command did not run, so re-sending
    # cannot repeat it.
    server, url = stub
    server.on("createSnapshot", error(530), error(503), Reply(body={"id": "s1", "jobid": "j1"}))
    async with CloudStackClient(settings(url)) as client:
        assert await client.call("createSnapshot", volumeid="v1") == {"id": "s1", "jobid": "j1"}
    assert server.count("createSnapshot") == 3


async def test_connection_refused_on_a_mutating_command_proves_nothing_was_sent() -> None:
    url = f"http://127.0.0.1:{free_port()}/client/api"
    async with CloudStackClient(settings(url, max_retries=1)) as client:
        with pytest.raises(CloudStackTransientError) as caught:
            await client.call("createSnapshot", volumeid="v1")
    assert not isinstance(caught.value, CloudStackOutcomeUnknown)


async def test_a_failure_while_waiting_for_an_accepted_job_is_an_unknown_outcome(
    stub: tuple[Stub, str],
) -> None:
    server, url = stub
    server.on("createSnapshot", Reply(body={"id": "s1", "jobid": "j4"}))
    server.on("queryAsyncJobResult", error(530))
    async with CloudStackClient(settings(url, max_retries=1)) as client:
        with pytest.raises(CloudStackOutcomeUnknown) as caught:
            await client.job("createSnapshot", volumeid="v1")
    assert "j4" in str(caught.value)
    assert server.count("createSnapshot") == 1
    assert server.count("queryAsyncJobResult") == 2  # the read itself is retried
