"""``csfabric dr …``: disaster recovery — plan, drill, report (temporary door in i11/drplan).

The replication helper's ``cli/dr.py`` (with ``status``) replaces this file at merge; it
keeps ``dr_app`` and calls each command module's ``register(dr_app)``.
"""

from __future__ import annotations

import typer

from csfabric.cli import dr_drill, dr_plan, dr_report

dr_app = typer.Typer(help="Disaster recovery: plan, drill, report.", no_args_is_help=True)
for module in (dr_plan, dr_drill, dr_report):
    module.register(dr_app)

__all__ = ["dr_app"]
