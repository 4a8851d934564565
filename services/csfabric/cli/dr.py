"""``csfabric dr …``: disaster recovery, as CloudStack shows it now.

This module is the group and ``status``; ``plan``, ``drill`` and ``report`` live in their
own modules (``dr_plan``, ``dr_drill``, ``dr_report``), each adding its command to
:data:`dr_app` through its ``register(dr_app)``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from csfabric.cli import dr_drill, dr_plan, dr_report
from csfabric.cli._common import JsonFlag

dr_app = typer.Typer(
    help="Disaster recovery: DR copies and achieved RPO per volume, recovery plans, drills.",
    no_args_is_help=True,
)

PolicyOpt = Annotated[str | None, typer.Option("--policy", help="Only this SnapshotPolicy.")]
FileOpt = Annotated[
    list[Path] | None,
    typer.Option("--file", help="Read policies from YAML instead of the store (no NATS)."),
]


@dr_app.command("status")
def status(policy: PolicyOpt = None, file: FileOpt = None, as_json: JsonFlag = False) -> None:
    """Per volume: newest local snapshot, newest DR copy, achieved RPO, breach; totals per
    policy.  Read from CloudStack with the replication service's rules (it need not run)."""
    from csfabric.cli.dr_status import run_status

    raise typer.Exit(asyncio.run(run_status(policy, file or [], as_json)))


for _module in (dr_plan, dr_drill, dr_report):
    _module.register(dr_app)

__all__ = ["dr_app"]
