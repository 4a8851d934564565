"""Collecting the status report: what runs, who holds which lease, how far behind consumers are.

Everything is read from NATS, so the answer is the same from any machine: heartbeats
(``csfabric_status``, with each instance's warnings), leases (``csfabric_leases``), consumer
info and fill of every contract stream, the dead-letter stream, and paused policies plus the
kill switch (``csfabric_policies``).  Other processes write these buckets while we read them,
so a missing bucket is an empty section and a value we cannot parse is reported as a
problem, never a crash.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError
from pydantic import BaseModel, Field

from csfabric.kernel import HEARTBEAT_BUCKET as STATUS_BUCKET
from csfabric.kernel import LEASE_BUCKET
from csfabric.kernel.bus import STREAMS, Bus, fill_ratio

# Named here rather than imported: status must work against whatever the policy store
# wrote, and the names are fixed by the contracts (DESIGN.md, "Policies").
POLICY_BUCKET = "csfabric_policies"
GLOBAL_PAUSE_KEY = "_global.pause"
DLQ_STREAM = "CSFABRIC_DLQ"
_PAGE = 256  # the server's page size for consumer lists


class ServiceSeen(BaseModel):
    service: str
    instance: str
    host: str | None = None
    pid: int | None = None
    version: str | None = None
    started: str | None = None
    seen: datetime | None = None
    age_seconds: float | None = Field(None, description="since the last heartbeat (wall time)")
    ops_url: str | None = None
    warnings: list[str] = Field(
        default_factory=list, description="what the instance says an operator must know"
    )


class LeaseHolder(BaseModel):
    name: str
    holder: str | None = None
    expires: datetime | None = None
    expired: bool | None = Field(None, description="judged on the fabric clock")


class ConsumerLag(BaseModel):
    stream: str
    consumer: str
    num_pending: int = Field(0, description="stored but not yet delivered")
    num_ack_pending: int = Field(0, description="delivered, not yet acked")
    num_redelivered: int = 0


class StreamFill(BaseModel):
    stream: str
    messages: int = 0
    bytes: int = 0
    max_bytes: int | None = None
    max_msgs: int | None = None
    ratio: float = Field(0.0, description="the larger of bytes/max_bytes and messages/max_msgs")
    refuses_when_full: bool = Field(True, description="DiscardPolicy.NEW: full = back-pressure")


class DlqDepth(BaseModel):
    messages: int = 0
    subjects: dict[str, int] = Field(default_factory=dict)


class PausedPolicy(BaseModel):
    key: str
    kind: str | None = None
    name: str | None = None
    version: int | None = None
    applied_by: str | None = None
    applied_at: str | None = None


class GlobalPause(BaseModel):
    paused: bool
    by: str | None = None
    at: str | None = None


class StatusReport(BaseModel):
    time: datetime
    services: list[ServiceSeen] = Field(default_factory=list)
    leases: list[LeaseHolder] = Field(default_factory=list)
    consumers: list[ConsumerLag] = Field(default_factory=list)
    streams: list[StreamFill] = Field(default_factory=list)
    dlq: DlqDepth = Field(default_factory=DlqDepth)
    paused_policies: list[PausedPolicy] = Field(default_factory=list)
    global_pause: GlobalPause | None = None
    problems: list[str] = Field(default_factory=list, description="what could not be read")


async def read_bucket(js: JetStreamContext, bucket: str) -> dict[str, bytes]:
    """Every live key of a KV bucket with its value; ``{}`` when the bucket does not exist."""
    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        return {}
    prefix = f"$KV.{bucket}."
    # One request lists the keys (deleted ones too: their markers are messages).
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}>")
    keys = [subject[len(prefix) :] for subject in info.state.subjects or {}]

    async def value(key: str) -> bytes | None:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:  # deleted, or expired between the two requests
            return None
        return entry.value or None

    values = await asyncio.gather(*(value(key) for key in keys))
    return {key: data for key, data in zip(keys, values, strict=True) if data is not None}


def _json_object(key: str, raw: bytes, problems: list[str]) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        problems.append(f"{key}: not JSON")
        return None
    if not isinstance(data, dict):
        problems.append(f"{key}: not a JSON object")
        return None
    return data


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _time(value: object) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _services(js: JetStreamContext, report: StatusReport) -> None:
    wall = datetime.now(UTC)  # heartbeats are written in wall time (see kernel.heartbeat)
    for key, raw in sorted((await read_bucket(js, STATUS_BUCKET)).items()):
        data = _json_object(f"{STATUS_BUCKET}/{key}", raw, report.problems)
        if data is None:
            continue
        service, _, instance = key.partition(".")
        seen = _time(data.get("seen"))
        pid = data.get("pid")
        warnings = data.get("warnings")
        report.services.append(
            ServiceSeen(
                service=str(data.get("service") or service),
                instance=str(data.get("instance") or instance),
                host=_str(data.get("host")),
                pid=pid if isinstance(pid, int) else None,
                version=_str(data.get("version")),
                started=_str(data.get("started")),
                seen=seen,
                age_seconds=round((wall - seen).total_seconds(), 1) if seen else None,
                ops_url=_str(data.get("ops_url")),
                warnings=[str(w) for w in warnings] if isinstance(warnings, list) else [],
            )
        )


async def _leases(js: JetStreamContext, report: StatusReport, now: datetime) -> None:
    for key, raw in sorted((await read_bucket(js, LEASE_BUCKET)).items()):
        data = _json_object(f"{LEASE_BUCKET}/{key}", raw, report.problems)
        if data is None:
            continue
        expires = _time(data.get("expires"))
        report.leases.append(
            LeaseHolder(
                name=key,
                holder=_str(data.get("holder")),
                expires=expires,
                expired=None if expires is None else expires <= now,
            )
        )


async def _consumers(js: JetStreamContext, report: StatusReport) -> None:
    for stream in STREAMS:
        offset = 0
        while True:
            try:
                page = await js.consumers_info(stream, offset=offset or None)
            except NotFoundError:  # the stream is not there (yet): no consumers
                break
            for info in page:
                report.consumers.append(
                    ConsumerLag(
                        stream=stream,
                        consumer=info.name,
                        num_pending=info.num_pending or 0,
                        num_ack_pending=info.num_ack_pending or 0,
                        num_redelivered=info.num_redelivered or 0,
                    )
                )
            if len(page) < _PAGE:
                break
            offset += len(page)


async def _streams(js: JetStreamContext, report: StatusReport) -> None:
    for stream in STREAMS:
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            continue
        config, state = info.config, info.state
        report.streams.append(
            StreamFill(
                stream=stream,
                messages=state.messages,
                bytes=state.bytes,
                max_bytes=config.max_bytes,
                max_msgs=config.max_msgs if (config.max_msgs or 0) > 0 else None,
                ratio=round(
                    fill_ratio(state.bytes, config.max_bytes, state.messages, config.max_msgs), 4
                ),
                refuses_when_full=config.discard != DiscardPolicy.OLD,
            )
        )


async def _dlq(js: JetStreamContext, report: StatusReport) -> None:
    try:
        info = await js.stream_info(DLQ_STREAM, subjects_filter=">")
    except NotFoundError:
        return
    report.dlq = DlqDepth(messages=info.state.messages, subjects=dict(info.state.subjects or {}))


async def _policies(js: JetStreamContext, report: StatusReport) -> None:
    for key, raw in sorted((await read_bucket(js, POLICY_BUCKET)).items()):
        data = _json_object(f"{POLICY_BUCKET}/{key}", raw, report.problems)
        if data is None:
            continue
        if key == GLOBAL_PAUSE_KEY:
            report.global_pause = GlobalPause(
                paused=data.get("paused") is True, by=_str(data.get("by")), at=_str(data.get("at"))
            )
        elif data.get("paused") is True:
            kind, _, name = key.partition(".")
            version = data.get("version")
            report.paused_policies.append(
                PausedPolicy(
                    key=key,
                    kind=_str(data.get("kind")) or kind,
                    name=_str(data.get("name")) or name,
                    version=version if isinstance(version, int) else None,
                    applied_by=_str(data.get("appliedBy")),
                    applied_at=_str(data.get("appliedAt")),
                )
            )


async def collect_status(bus: Bus, *, now: datetime | None = None) -> StatusReport:
    """Read every section concurrently; a section that fails becomes a line in ``problems``."""
    report = StatusReport(time=datetime.now(UTC))
    fabric_now = now or bus.clock.now()
    sections: dict[str, Callable[[], Awaitable[None]]] = {
        "services": lambda: _services(bus.js, report),
        "leases": lambda: _leases(bus.js, report, fabric_now),
        "consumers": lambda: _consumers(bus.js, report),
        "streams": lambda: _streams(bus.js, report),
        "dlq": lambda: _dlq(bus.js, report),
        "policies": lambda: _policies(bus.js, report),
    }
    results = await asyncio.gather(*(read() for read in sections.values()), return_exceptions=True)
    for name, result in zip(sections, results, strict=True):
        if isinstance(result, BaseException):
            reason = str(result) or type(result).__name__
            report.problems.append(f"{name}: cannot read ({reason})")
    return report
