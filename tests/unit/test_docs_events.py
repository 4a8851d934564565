"""docs/events.md stays true: its example runs, and its catalogue names every model and key."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from csfabric.events import FAMILIES, LIFECYCLE, Payload

DOC = Path(__file__).parents[2] / "docs" / "events.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def test_the_typed_handler_example_runs_and_prints_what_the_page_says() -> None:
    text = DOC.read_text()
    (block,) = _python_blocks(text)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block, str(DOC), "exec"), {"__name__": "docs_events"})
    printed = out.getvalue().strip()
    assert printed.startswith("SNAPSHOT.CREATE of Snapshot 7b7b7b7b-")
    assert " ".join(printed.split()) in " ".join(text.split())


def test_the_catalogue_names_every_type_model_schema_and_key() -> None:
    text = DOC.read_text()
    models: list[tuple[str, type[Payload]]] = [
        *((f"cloudstack.{f}.", m) for f, m in FAMILIES.items()),
        *LIFECYCLE.items(),
    ]
    for type_, model in models:
        assert f"`{type_}" in text, type_
        assert f"`{model.__name__}`" in text, model.__name__
        assert f"`{model.dataschema()}`" in text, model.dataschema()
        assert f"`{model.schema_stem}.schema.json`" in text, model.schema_stem
        for name, field in model.model_fields.items():
            key = field.alias or name
            assert f"`{key}`" in text, f"{model.__name__}.{key}"
