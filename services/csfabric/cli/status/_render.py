"""The status report as rich tables, one per section, for people at a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from csfabric.cli.status._collect import StatusReport


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("-" if cell is None else str(cell) for cell in row))
    if not table.row_count:
        table.add_row(*(["[dim]none[/]"] + [""] * (len(columns) - 1)))
    return table


def render(report: StatusReport, console: Console, nats_url: str) -> None:
    console.print(f"[bold]csfabric status[/] at {_when(report.time)} from {nats_url}")
    pause = report.global_pause
    if pause is not None and pause.paused:
        console.print(f"[bold red]ALL ACTIONS PAUSED[/] by {pause.by or '?'} at {pause.at or '?'}")
    services = (
        (s.service, s.instance, f"{s.age_seconds:g}s ago" if s.age_seconds is not None else None,
         s.version, s.ops_url)
        for s in report.services
    )  # fmt: skip
    console.print(_table("services", ("service", "instance", "seen", "version", "ops"), services))
    for seen in report.services:
        for warning in seen.warnings:
            where = escape(f"{seen.service}/{seen.instance}: {warning}")
            console.print(f"[bold yellow]warning:[/] {where}")
    leases = (
        (lease.name, lease.holder, _when(lease.expires), "expired" if lease.expired else "held")
        for lease in report.leases
    )
    console.print(_table("leases", ("lease", "holder", "expires", "state"), leases))
    consumers = (
        (c.stream, c.consumer, c.num_pending, c.num_ack_pending, c.num_redelivered)
        for c in report.consumers
    )
    columns = ("stream", "consumer", "pending", "ack pending", "redelivered")
    console.print(_table("consumer lag", columns, consumers))
    streams = (
        (f.stream, f.messages, f.bytes, f.max_bytes, f"{f.ratio:.0%}",
         "refuses new" if f.refuses_when_full else "drops oldest")
        for f in report.streams
    )  # fmt: skip
    fill_columns = ("stream", "messages", "bytes", "max bytes", "full", "when full")
    console.print(_table("streams", fill_columns, streams))
    dlq = sorted(report.dlq.subjects.items())
    console.print(_table(f"dead letters: {report.dlq.messages}", ("subject", "messages"), dlq))
    paused = (
        (p.kind, p.name, p.version, p.applied_by, p.applied_at) for p in report.paused_policies
    )
    columns = ("kind", "name", "version", "applied by", "applied at")
    console.print(_table("paused policies", columns, paused))
    for problem in report.problems:
        console.print(f"[yellow]problem:[/] {problem}")


__all__ = ["render"]
