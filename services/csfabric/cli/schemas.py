"""``csfabric schemas export|check``: the JSON Schemas generated from the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from csfabric.cli._common import JsonFlag

__all__ = ["schemas_app"]

schemas_app = typer.Typer(
    help="JSON Schemas generated from the event models.", no_args_is_help=True
)
SchemaDir = Annotated[
    Path, typer.Option("--out", "--dir", help="The schemas directory.", file_okay=False)
]


@schemas_app.command("export")
def schemas_export(out: SchemaDir = Path("schemas"), as_json: JsonFlag = False) -> None:
    """Write one <name>.schema.json per model (and delete schemas no model makes)."""
    from csfabric.events import export_schemas

    result = export_schemas(out)
    if as_json:
        typer.echo(json.dumps({"directory": str(out), **result}, indent=2))
        return
    for action in ("written", "removed", "unchanged"):
        for name in result[action]:
            typer.echo(f"{action:9} {out / name}")


@schemas_app.command("check")
def schemas_check(directory: SchemaDir = Path("schemas"), as_json: JsonFlag = False) -> None:
    """Exit 1 when the schemas directory differs from what the models generate."""
    from csfabric.events import compare_schemas

    diff = compare_schemas(directory)
    if as_json:
        typer.echo(json.dumps(diff.as_dict(), indent=2))
    elif diff.ok:
        typer.echo(f"{directory}/ is up to date with the models")
    else:
        typer.echo(f"{directory}/ differs from the models:")
        for kind in ("stale", "missing", "extra"):
            for name in getattr(diff, kind):
                typer.echo(f"  {kind:8} {directory / name}")
        for text in diff.diffs.values():
            typer.echo(text)
        typer.echo("run `csfabric schemas export` and commit the result")
    raise typer.Exit(0 if diff.ok else 1)
