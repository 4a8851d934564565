"""``csfabric dr status``: every SnapshotPolicy's volumes judged from CloudStack's rows now.

Policies come from the store (NATS, as every command finds it) or from ``--file``; the
rows from CloudStack (``listVolumes``, ``listSnapshots zoneid=… showunique=false``) through
:func:`csfabric.replication.reader.read_policy`, judged by the same
:func:`csfabric.replication.logic.sample` the service audits at each boundary.  The time
is the fabric clock's (``dev.json``'s scaled clock next to ``csfabric dev``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.devstack import connect_once
from csfabric.dr import KIND, RpoSample, SnapshotPolicy
from csfabric.kernel import CsfabricError, FabricSettings, parse_clock, redact
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import PolicyStore, load_policies
from csfabric.replication.logic import samples
from csfabric.replication.reader import Zones, read_policy

# (name, spec, when applied: None for a file)
Policies = list[tuple[str, SnapshotPolicy, datetime | None]]


async def _stored_policies() -> Policies:
    settings = FabricSettings()
    nc = await connect_once(settings.nats_url)
    bus = Bus(nc, service="cli", clock=parse_clock(settings.clock))
    try:
        stored = await PolicyStore(bus).list()
    finally:
        await bus.close()
    found: Policies = []
    for p in stored:
        spec = p.spec() if p.kind == KIND else None
        if isinstance(spec, SnapshotPolicy):
            found.append((p.name, spec, p.applied_at))
    return found


def _file_policies(paths: list[Path]) -> Policies:
    found: Policies = []
    for loaded in load_policies(paths):
        doc = loaded.document
        if doc.kind == KIND and isinstance(doc.spec, SnapshotPolicy):
            found.append((doc.metadata.name, doc.spec, None))
    return found


async def collect(
    policies: Policies, client: CloudStackClient, now: datetime
) -> list[dict[str, Any]]:
    """The status of each policy as JSON-able dicts (what ``--json`` prints)."""
    zones = Zones(client)
    out: list[dict[str, Any]] = []
    for name, spec, applied in policies:
        view = await read_policy(client, zones, name, spec, applied)
        found = samples(now, view.volumes, view.local, view.measured, spec.rpo)
        known = [s.achieved_rpo_s for s in found if s.achieved_rpo_s is not None]
        out.append(
            {
                "policy": name,
                "at": now.isoformat(),
                "rpo_s": spec.rpo.total_seconds(),
                "zone": view.primary.name,
                "dr_zone": view.measured_in.name,
                "volumes": [s.model_dump(mode="json") for s in found],
                "totals": {
                    "volumes": len(found),
                    "with_dr_copy": sum(s.newest_dr is not None for s in found),
                    "in_breach": sum(s.breach for s in found),
                    "worst_rpo_s": max(known, default=None),
                },
            }
        )
    return out


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _print(report: list[dict[str, Any]]) -> None:
    console = Console()
    if not report:
        console.print("no SnapshotPolicy found")
    for entry in report:
        t = entry["totals"]
        title = (
            f"{entry['policy']}: {entry['zone']} → {entry['dr_zone']}, RPO {entry['rpo_s']:g}s"
            f" — {t['volumes']} volume(s), {t['with_dr_copy']} copied, {t['in_breach']} in breach"
        )
        table = Table(title=title)
        for column in ("volume", "newest local", "newest DR copy", "achieved RPO", "breach"):
            table.add_column(column, overflow="fold")
        for raw in entry["volumes"]:
            s = RpoSample.model_validate(raw)
            rpo = "-" if s.achieved_rpo_s is None else f"{s.achieved_rpo_s:.0f}s"
            table.add_row(
                s.volume_name or s.volume_id,
                _when(s.newest_local),
                _when(s.newest_dr),
                rpo,
                "[red]BREACH[/]" if s.breach else "ok",
            )
        console.print(table)


async def run_status(policy: str | None, files: list[Path], as_json: bool) -> int:
    try:
        policies = _file_policies(files) if files else await _stored_policies()
        if policy is not None:
            policies = [p for p in policies if p[0] == policy]
            if not policies:
                raise CsfabricError(f"no SnapshotPolicy is called {policy!r}")
        settings = FabricSettings()
        clock = parse_clock(settings.clock)
        async with CloudStackClient(CloudStackSettings(), clock=clock) as client:
            report = await collect(policies, client, clock.now())
    except CsfabricError as exc:
        typer.echo(f"csfabric: {redact(str(exc))}", err=True)
        return 1
    if as_json:
        typer.echo(json.dumps({"policies": report}, indent=2))
    else:
        _print(report)
    return 0


__all__ = ["collect", "run_status"]
