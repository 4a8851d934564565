"""Options and output helpers every command group shares."""

from __future__ import annotations

from typing import Annotated

import typer

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]

__all__ = ["JsonFlag"]
