"""Ingest's webhook receiver, in-process against a real nats-server, and ``csfabric dev``
end to end (simulator → signed webhook → ingest → JetStream)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from csfabric.cli.status import collect_status, run_status
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack._native import action_event
from csfabric.cloudstack.simulator import World
from csfabric.ingest.app import Ingest, start_ingest
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel import ConfigError, FabricSettings, SteppedClock, parse_event
from csfabric.kernel.bus import Bus, DeadLetter
from csfabric.kernel.service import ServiceContext, run_service
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from tests.integration.test_dev import REPO, _env, _read_ready_line
from tests.servers import NatsServerProcess, free_port

pytestmark = pytest.mark.integration

SECRET = "webhook-test-secret"
VM = str(uuid.uuid5(uuid.NAMESPACE_URL, "vm/web-01"))
USER = str(uuid.uuid5(uuid.NAMESPACE_URL, "user/alice"))
ACCOUNT = str(uuid.uuid5(uuid.NAMESPACE_URL, "account/alice"))
WHEN = datetime(2024, 11, 28, 8, 15, tzinfo=UTC)


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def vm_create(status: str = "Completed") -> bytes:
    event = action_event(
        "VM.CREATE", status, f"deploying Vm. Vm Id: {VM}", user=USER, account=ACCOUNT,
        entity="VirtualMachine", entity_uuid=VM, when=WHEN, tz=UTC,
    )  # fmt: skip
    return event.body_json()


def ingest_settings(tmp_path: Path, **overrides: Any) -> IngestSettings:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text(SECRET + "\n")
    values: dict[str, Any] = {
        "cloud_name": "test-cloud",
        "webhook_port": free_port(),
        "webhook_secret_file": secret_file,
        "poll_interval": 0,
        "amqp_url": None,
        "kafka_bootstrap": None,
        **overrides,
    }
    return IngestSettings(**values)


@contextlib.asynccontextmanager
async def running_ingest(
    nats_url: str,
    state_dir: Path,
    settings: IngestSettings,
    cloudstack: CloudStackSettings | None = None,
    clock: str = "real",
) -> AsyncIterator[tuple[ServiceContext, Ingest]]:
    """``run_service("ingest", …)`` in this process until the block ends."""
    started: asyncio.Future[tuple[ServiceContext, Ingest]] = asyncio.Future()

    async def setup(ctx: ServiceContext) -> None:
        started.set_result((ctx, await start_ingest(ctx, settings, cloudstack=cloudstack)))

    stop = asyncio.Event()
    fabric = FabricSettings(nats_url=nats_url, state_dir=state_dir, clock=clock)
    task = asyncio.create_task(run_service("ingest", setup, settings=fabric, stop=stop))
    try:
        done, _ = await asyncio.wait({task, started}, timeout=20, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()
        assert started.done(), "ingest did not start within 20 s"
        yield started.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def post(
    url: str, body: bytes, headers: dict[str, str] | None = None, method: str = "POST"
) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, data=body, headers=headers or {}) as response,
    ):
        return response.status, await response.text()


def delivery_headers(body: bytes, event_id: str | None = None) -> dict[str, str]:
    return {
        "X-CS-Event-ID": event_id or str(uuid.uuid4()),
        "X-CS-Event": "VM.CREATE",
        "User-Agent": f"CS-Hookshot/{ACCOUNT}",
        "Content-Type": "application/json; charset=UTF-8",
        "X-CS-Signature": sign(body),
    }


async def count(js: JetStreamContext, stream: str, subject: str) -> int:
    info = await js.stream_info(stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


async def last(js: JetStreamContext, stream: str, subject: str) -> Any:
    return await js.get_last_msg(stream, subject)


@contextlib.asynccontextmanager
async def jetstream(url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


async def test_signed_event_is_stored_once_even_when_delivered_twice(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    settings = ingest_settings(tmp_path)
    body = vm_create()
    headers = delivery_headers(body)
    async with (
        running_ingest(nats_server.url, tmp_path, settings) as (_, ingest),
        jetstream(nats_server.url) as js,
    ):
        assert await post(ingest.webhook.url, body, headers) == (200, "stored\n")
        assert await post(ingest.webhook.url, body, headers) == (200, "duplicate\n")
        subject = "csfabric.cloudstack.action.VM.CREATE"
        assert await count(js, "CSFABRIC_EVENTS", subject) == 1
        event = parse_event((await last(js, "CSFABRIC_EVENTS", subject)).data)
    assert event.type == "cloudstack.action.VM.CREATE"
    assert event.source == "test-cloud"
    assert event.subject == VM
    assert event.extensions["cseventid"] == headers["X-CS-Event-ID"]
    assert event.data["native"] == json.loads(body)


async def test_test_delivery_is_answered_and_not_stored(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    body = b'{ "CloudStack": "works!" }'
    headers = delivery_headers(body) | {"X-CS-Event": "TEST.WEBHOOK"}
    async with (
        running_ingest(nats_server.url, tmp_path, ingest_settings(tmp_path)) as (_, ingest),
        jetstream(nats_server.url) as js,
    ):
        assert await post(ingest.webhook.url, body, headers) == (200, "test\n")
        assert await count(js, "CSFABRIC_EVENTS", "csfabric.>") == 0


async def audit_records(js: JetStreamContext) -> list[dict[str, Any]]:
    """Every ``reject-webhook`` record of ingest, oldest first."""
    try:
        total = await count(js, "CSFABRIC_AUDIT", "csfabric.audit.ingest")
    except NotFoundError:
        return []
    sub = await js.pull_subscribe("csfabric.audit.ingest", stream="CSFABRIC_AUDIT")
    records: list[dict[str, Any]] = []
    try:
        while len(records) < total:
            for msg in await sub.fetch(total - len(records), timeout=5):
                records.append(json.loads(msg.data))
    finally:
        await sub.unsubscribe()
    return [r for r in records if r.get("decision") == "reject-webhook"]


async def flushed(ctx: ServiceContext, js: JetStreamContext, want: int) -> list[dict[str, Any]]:
    """Let the window end on the stepped clock, then wait for ``want`` rejection records."""
    clock = ctx.clock
    assert isinstance(clock, SteppedClock)
    await clock.advance(IngestSettings().webhook_reject_window)  # the shipped window
    records: list[dict[str, Any]] = []

    async def enough() -> bool:
        nonlocal records
        records = await audit_records(js)
        return len(records) >= want

    await wait_for(enough, 10, f"{want} rejection records")
    return records


async def test_forged_or_unsigned_is_401_and_counted_per_source_and_window(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    body = vm_create()
    forged = delivery_headers(body) | {
        "X-CS-Signature": sign(body, "not-the-secret"),
        "User-Agent": "u" * 8000,  # kept whole as evidence before (records up to 16 KB)
        "X-CS-Event": "e" * 8000,
    }
    unsigned = {k: v for k, v in delivery_headers(body).items() if k != "X-CS-Signature"}
    settings = ingest_settings(tmp_path)
    async with (
        running_ingest(nats_server.url, tmp_path, settings, clock="stepped") as (ctx, ingest),
        jetstream(nats_server.url) as js,
    ):
        # 50 distinct forged bodies: before, 50 audit records (an unlimited flood).
        for i in range(50):
            distinct = body + b" " * i
            headers = forged | {"X-CS-Signature": sign(distinct, "not-the-secret")}
            assert (await post(ingest.webhook.url, distinct, headers))[0] == 401
        assert (await post(ingest.webhook.url, body + b" ", unsigned))[0] == 401
        assert await audit_records(js) == []  # counted in memory until the window ends
        records = await flushed(ctx, js, 2)
        await asyncio.sleep(0.5)  # nothing more follows
        assert len(await audit_records(js)) == 2
        assert await count(js, "CSFABRIC_EVENTS", "csfabric.>") == 0
    by_kind = {r["evidence"]["kind"]: r for r in records}
    assert set(by_kind) == {"bad-signature", "missing-signature"}
    record = by_kind["bad-signature"]
    assert record["evidence"]["count"] == 50
    assert record["evidence"]["remote"] == "127.0.0.1"
    assert by_kind["missing-signature"]["evidence"]["count"] == 1
    assert record["evidence"]["user_agent"].startswith("u" * 200)
    assert len(record["evidence"]["user_agent"]) < 250
    assert len(record["evidence"]["event"]) < 250
    assert len(json.dumps(record)) < 2000
    assert record["service"] == "ingest"
    assert record["outcome"] == "skipped"
    assert "127.0.0.1" in record["reason"]
    text = json.dumps(records)
    assert SECRET not in text
    assert forged["X-CS-Signature"] not in text


async def raw_request(port: int, head: bytes, body: bytes = b"") -> int:
    """Send exact bytes (aiohttp's client refuses non-ASCII header values); the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"\r\n" + body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 15)
        return int(line.split()[1])
    finally:
        writer.close()


def raw_head(path: str, body: bytes, headers: dict[str, bytes]) -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    lines.append(f"Content-Length: {len(body)}".encode())
    lines += [name.encode() + b": " + value for name, value in headers.items()]
    return b"\r\n".join(lines) + b"\r\n"


async def test_every_malformed_signature_is_401_and_counted(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    body = vm_create()
    malformed = [
        b"\xff\xfe\xfd",  # not UTF-8: a 500 with a traceback before
        "é".encode() * 44,
        b"not base64!",
        b"bm9wZQ==",  # base64 of 4 bytes
        b"",  # empty
    ]
    settings = ingest_settings(tmp_path)
    async with (
        running_ingest(nats_server.url, tmp_path, settings, clock="stepped") as (ctx, ingest),
        jetstream(nats_server.url) as js,
    ):
        path = settings.webhook_path
        statuses = [
            await raw_request(
                ingest.webhook.port, raw_head(path, body, {"X-CS-Signature": value}), body
            )
            for value in malformed
        ]
        assert statuses == [401] * len(malformed)
        records = await flushed(ctx, js, 2)
    counts = {r["evidence"]["kind"]: r["evidence"]["count"] for r in records}
    assert counts == {"malformed-signature": 4, "missing-signature": 1}


async def test_a_non_utf8_event_id_is_dropped_and_the_event_stored(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    body = vm_create()
    headers = {"X-CS-Event-ID": b"\xff\xfe-not-utf8", "X-CS-Signature": sign(body).encode()}
    settings = ingest_settings(tmp_path)
    async with (
        running_ingest(nats_server.url, tmp_path, settings) as (_, ingest),
        jetstream(nats_server.url) as js,
    ):
        head = raw_head(settings.webhook_path, body, headers)
        assert await raw_request(ingest.webhook.port, head, body) == 200  # 503 for ever before
        subject = "csfabric.cloudstack.action.VM.CREATE"
        assert await count(js, "CSFABRIC_EVENTS", subject) == 1
        event = parse_event((await last(js, "CSFABRIC_EVENTS", subject)).data)
    assert "cseventid" not in event.extensions
    assert event.data["native"] == json.loads(body)


async def test_no_secret_refuses_to_start_unless_unsigned_is_allowed(
    nats_server: NatsServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unsigned = ingest_settings(tmp_path, webhook_secret_file=None)
    with pytest.raises(ConfigError, match="ALLOW_UNSIGNED"):
        async with running_ingest(nats_server.url, tmp_path, unsigned):
            pass
    allowed = ingest_settings(tmp_path, webhook_secret_file=None, webhook_allow_unsigned=True)
    async with running_ingest(nats_server.url, tmp_path, allowed) as (ctx, ingest):
        assert (await post(ingest.webhook.url, vm_create()))[0] == 200
        assert any("UNSIGNED" in warning for warning in ctx.warnings)

        reader = await Bus.connect(nats_server.url, service="status", create_streams=False)
        try:
            report = await collect_status(reader)
        finally:
            await reader.close()
        capsys.readouterr()
        fabric = FabricSettings(nats_url=nats_server.url, state_dir=tmp_path)
        assert await run_status(False, fabric) == 0
        shown = capsys.readouterr().out
    assert "warning:" in shown
    assert "UNSIGNED" in shown
    fills = {f.stream: f for f in report.streams}
    assert fills["CSFABRIC_EVENTS"].refuses_when_full
    assert fills["CSFABRIC_EVENTS"].messages == 1
    assert not fills["CSFABRIC_ALERTS"].refuses_when_full
    assert "refuses new" in shown
    [seen] = [s for s in report.services if s.service == "ingest"]
    assert any("UNSIGNED" in warning for warning in seen.warnings)


async def test_oversized_wrong_method_and_malformed(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    settings = ingest_settings(tmp_path, webhook_max_bytes=1024)
    big = b"{" + b" " * 4096 + b"}"
    malformed = b'{"event": "VM.CREATE", "status": '

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b" " * 1024  # no Content-Length: the limit must hold while reading

    async with (
        running_ingest(nats_server.url, tmp_path, settings) as (_, ingest),
        jetstream(nats_server.url) as js,
    ):
        url = ingest.webhook.url
        assert (await post(url, big))[0] == 413
        async with aiohttp.ClientSession() as http, http.post(url, data=chunked()) as response:
            assert response.status == 413
        assert (await post(url, b"", method="GET"))[0] == 405
        assert (await post(url, b"{}", method="PUT"))[0] == 405
        signed = {"X-CS-Signature": sign(malformed)}
        assert await post(url, malformed, signed) == (200, "dead-lettered\n")
        assert await count(js, "CSFABRIC_EVENTS", "csfabric.>") == 0
        dead = await last(js, "CSFABRIC_DLQ", "csfabric.dlq.ingest")
    letter = DeadLetter.from_message(dead.data, dead.headers or {})
    assert letter.original == malformed
    assert letter.service == "ingest"
    assert letter.subject == "webhook"
    assert letter.reason  # the parser's reason, e.g. "not valid JSON: …"


async def test_nats_away_is_503_then_stored_once_back(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    settings = ingest_settings(tmp_path, webhook_timeout=1.0)
    body = vm_create("Started")
    headers = delivery_headers(body)
    async with running_ingest(nats_server.url, tmp_path, settings) as (_, ingest):
        nats_server.kill()
        assert (await post(ingest.webhook.url, body, headers))[0] == 503
        await nats_server.start()
        status = 0
        for _ in range(50):  # the client reconnects every 0.25 s
            status, _ = await post(ingest.webhook.url, body, headers)
            if status == 200:
                break
            await asyncio.sleep(0.2)
        assert status == 200
        async with jetstream(nats_server.url) as js:
            assert await count(js, "CSFABRIC_EVENTS", "csfabric.>") == 1


# The stream watcher's shipped interval and threshold (kernel.streamwatch).
WATCH_INTERVAL, WATCH_THRESHOLD = 15.0, 0.8


def numbered_vm_create(i: int) -> bytes:
    """A distinct VM.CREATE event per ``i`` (its own VM)."""
    vm = str(uuid.uuid5(uuid.NAMESPACE_URL, f"vm/{i}"))
    event = action_event(
        "VM.CREATE", "Completed", f"deploying Vm. Vm Id: {vm}", user=USER, account=ACCOUNT,
        entity="VirtualMachine", entity_uuid=vm, when=WHEN, tz=UTC,
    )  # fmt: skip
    return event.body_json()


async def test_a_full_events_stream_is_503_with_retry_after_and_alerted_before(
    nats_server: NatsServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CSFABRIC_STREAM_MAX_BYTES", str(48 * 1024))
    settings = ingest_settings(tmp_path)
    stored: list[int] = []
    alerted_after: int | None = None
    refused: tuple[int, str | None] | None = None
    async with (
        running_ingest(nats_server.url, tmp_path, settings, clock="stepped") as (ctx, ingest),
        jetstream(nats_server.url) as js,
    ):
        clock = ctx.clock
        assert isinstance(clock, SteppedClock)
        labels = {"service": "ingest", "stream": "CSFABRIC_EVENTS"}
        for i in range(200):
            body = numbered_vm_create(i)
            async with (
                aiohttp.ClientSession() as http,
                http.post(ingest.webhook.url, data=body, headers=delivery_headers(body)) as resp,
            ):
                if resp.status != 200:
                    refused = (resp.status, resp.headers.get("Retry-After"))
                    break
            stored.append(i)
            info = await js.stream_info("CSFABRIC_EVENTS")
            ratio = info.state.bytes / (48 * 1024)

            async def measured(want: float = ratio) -> bool:
                got = ctx.metrics.registry.get_sample_value("csfabric_stream_fill_ratio", labels)
                if got is not None and abs(got - want) < 1e-9:
                    return True
                await clock.advance(WATCH_INTERVAL)  # the watcher's next check
                return False

            await wait_for(measured, 10, "the watcher's check", step=0.01)
            if alerted_after is None and ratio >= WATCH_THRESHOLD:

                async def alert() -> bool:
                    try:
                        await last(js, "CSFABRIC_ALERTS", "csfabric.alert.ingest.stream-full")
                    except NotFoundError:
                        return False
                    return True

                await wait_for(alert, 10, "a stream-full alert")
                alerted_after = i
        assert refused is not None, "200 deliveries fit a 48 KiB stream"
        info = await js.stream_info("CSFABRIC_EVENTS")
        assert info.state.first_seq == 1  # nothing stored was deleted to make room
        assert info.state.messages == len(stored)
        raw = await last(js, "CSFABRIC_ALERTS", "csfabric.alert.ingest.stream-full")
    assert refused == (503, str(settings.webhook_retry_after))
    assert alerted_after is not None
    assert alerted_after < stored[-1]  # alerted while deliveries were still stored
    alert = json.loads(raw.data)
    assert alert["stream"] == "CSFABRIC_EVENTS"
    assert alert["ratio"] < 1.0


# -- csfabric dev end to end -------------------------------------------------------------


async def wait_for(
    check: Callable[[], Awaitable[bool]], seconds: float, what: str, step: float = 0.2
) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not await check():
                await asyncio.sleep(step)
    except TimeoutError:
        raise AssertionError(f"no {what} after {seconds:g} s") from None


async def test_csfabric_dev_deploy_reaches_jetstream_through_the_webhook(tmp_path: Path) -> None:
    state = tmp_path / "state"
    nats_port, webhook_port = free_port(), free_port()
    webhook_url = f"http://127.0.0.1:{webhook_port}/webhook"
    env = _env(state) | {
        "CSFABRIC_SIMULATOR_WEBHOOK_URL": webhook_url,
        "CSFABRIC_INGEST_WEBHOOK_PORT": str(webhook_port),
        # The poller would store the same events again under row ids if the webhook lost a
        # race; off here, so only the webhook can have delivered them.
        "CSFABRIC_INGEST_POLL_INTERVAL": "0",
    }
    log = (tmp_path / "dev.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "dev", "--nats-port", str(nats_port),
        env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=log,
    )  # fmt: skip
    try:
        ready = await _read_ready_line(proc, 60)
        dev = json.loads((state / "dev.json").read_text())
        cloudstack = CloudStackSettings(
            endpoint=dev["cloudstack_endpoint"],
            key=dev["cloudstack_key"],
            secret=dev["cloudstack_secret"],
            poll_interval=0.05,
        )
        nats_url = str(ready.get("nats_url") or dev["nats_url"])
        async with jetstream(nats_url) as js:

            async def receiver_up() -> bool:
                try:
                    return (await post(webhook_url, b"", method="GET"))[0] == 405
                except aiohttp.ClientError:
                    return False

            await wait_for(receiver_up, 60, "ingest's webhook receiver")
            world = World.demo(0)  # dev's simulator is seeded 0: the same offering/template ids
            async with CloudStackClient(cloudstack) as client:
                zones = await client.list_zones()
                zone = next(z for z in zones if z.name == "zone-london")
                job = await client.job(
                    "deployVirtualMachine", zoneid=zone.id,
                    serviceofferingid=world.service_offering_id, templateid=world.template_id,
                )  # fmt: skip
                assert job.ok, job.error
                vm = job.resource_id

            subject = "csfabric.cloudstack.action.VM.CREATE"

            async def four_stored() -> bool:
                try:
                    return await count(js, "CSFABRIC_EVENTS", subject) >= 4
                except NotFoundError:
                    return False

            await wait_for(four_stored, 30, "four VM.CREATE events")
            assert await count(js, "CSFABRIC_EVENTS", subject) == 4
            event = parse_event((await last(js, "CSFABRIC_EVENTS", subject)).data)
        assert event.subject == vm
        assert event.data["status"] == "Completed"
        assert "cseventid" in event.extensions  # it came by webhook, not by listEvents
    finally:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
        log.close()
