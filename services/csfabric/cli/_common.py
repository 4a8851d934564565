"""Options and output helpers every command group shares."""

from __future__ import annotations

from typing import Annotated

import typer

# What a command that needs NATS tells a user it cannot reach.
NATS_FIX = "start `csfabric dev`, or set CSFABRIC_NATS_URL"

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]

__all__ = ["NATS_FIX", "JsonFlag"]
