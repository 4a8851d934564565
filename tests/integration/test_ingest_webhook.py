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
from csfabric.cloudstack.client import CloudStackClient
from csfabric.cloudstack.native import action_event
from csfabric.cloudstack.settings import CloudStackSettings
from csfabric.cloudstack.simulator.world import World
from csfabric.ingest.app import Ingest, start_ingest
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel.dlq import DeadLetter
from csfabric.kernel.envelope import parse_event
from csfabric.kernel.runtime import ServiceContext, run_service
from csfabric.kernel.settings import FabricSettings
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
) -> AsyncIterator[tuple[ServiceContext, Ingest]]:
    """``run_service("ingest", …)`` in this process until the block ends."""
    started: asyncio.Future[tuple[ServiceContext, Ingest]] = asyncio.Future()

    async def setup(ctx: ServiceContext) -> None:
        started.set_result((ctx, await start_ingest(ctx, settings, cloudstack=cloudstack)))

    stop = asyncio.Event()
    fabric = FabricSettings(nats_url=nats_url, state_dir=state_dir, clock="real")
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


async def test_forged_or_unsigned_is_401_and_audited(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    body = vm_create()
    forged = delivery_headers(body) | {"X-CS-Signature": sign(body, "not-the-secret")}
    unsigned = {k: v for k, v in delivery_headers(body).items() if k != "X-CS-Signature"}
    async with (
        running_ingest(nats_server.url, tmp_path, ingest_settings(tmp_path)) as (_, ingest),
        jetstream(nats_server.url) as js,
    ):
        status, _ = await post(ingest.webhook.url, body, forged)
        assert status == 401
        record = json.loads((await last(js, "CSFABRIC_AUDIT", "csfabric.audit.ingest")).data)
        status, _ = await post(ingest.webhook.url, body + b" ", unsigned)
        assert status == 401
        assert await count(js, "CSFABRIC_AUDIT", "csfabric.audit.ingest") == 2
        assert await count(js, "CSFABRIC_EVENTS", "csfabric.>") == 0
    assert record["decision"] == "reject-webhook"
    assert record["service"] == "ingest"
    assert "127.0.0.1" in record["reason"]
    text = json.dumps(record)
    assert SECRET not in text
    assert forged["X-CS-Signature"] not in text


async def test_oversized_wrong_method_and_malformed(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    settings = ingest_settings(tmp_path, webhook_max_bytes=1024, webhook_secret_file=None)
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
        assert await post(url, malformed) == (200, "dead-lettered\n")
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


# -- csfabric dev end to end -------------------------------------------------------------


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    try:
        async with asyncio.timeout(seconds):
            while not await check():
                await asyncio.sleep(0.2)
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
