"""Render the JSON Schemas of :data:`SCHEMA_MODELS`, write them, and diff them against a dir.

The output is deterministic (sorted keys, two-space indent, trailing newline), so a diff
in ``schemas/`` always means the models changed.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from csfabric.events._catalogue import SCHEMA_MODELS
from csfabric.kernel.policy import kind_schemas

SUFFIX = ".schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def render(model: type[BaseModel]) -> str:
    return _dump(model.model_json_schema(), f"{_door(model.__module__)}.{model.__qualname__}")


def _door(module: str) -> str:
    """The package a model is imported from: ``csfabric.kernel._audit`` → ``csfabric.kernel``."""
    parts = module.split(".")
    public = [p for p in parts if not p.startswith("_")]
    return ".".join(
        public[: next((i for i, p in enumerate(parts) if p.startswith("_")), len(parts))]
    )


def _dump(schema: dict[str, Any], origin: str) -> str:
    schema["$schema"] = DRAFT
    schema["$comment"] = f"Generated from {origin} by `csfabric schemas export`; do not edit."
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    """``{file name: text}`` for every exported model and every installed policy kind."""
    out = {f"{stem}{SUFFIX}": render(model) for stem, model in SCHEMA_MODELS.items()}
    for kind, schema in kind_schemas().items():
        out[f"policy-{kind}{SUFFIX}"] = _dump(schema, f"policy kind {kind}")
    return out


@dataclass
class SchemaDiff:
    """How a schemas directory differs from the code."""

    directory: Path
    stale: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    diffs: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.stale or self.missing or self.extra)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "directory": str(self.directory),
            "stale": self.stale,
            "missing": self.missing,
            "extra": self.extra,
        }


def compare(directory: Path, *, context_lines: int = 20) -> SchemaDiff:
    """Compare ``directory``'s ``*.schema.json`` files with what the code renders."""
    wanted = render_all()
    have = {p.name for p in directory.glob(f"*{SUFFIX}")} if directory.is_dir() else set()
    diff = SchemaDiff(directory)
    for name, text in sorted(wanted.items()):
        if name not in have:
            diff.missing.append(name)
            continue
        current = (directory / name).read_text()
        if current != text:
            diff.stale.append(name)
            lines = difflib.unified_diff(
                current.splitlines(), text.splitlines(), f"{name} (on disk)", f"{name} (code)"
            )
            diff.diffs[name] = "\n".join(list(lines)[: context_lines + 3])
    diff.extra = sorted(have - set(wanted))
    return diff


def export(directory: Path) -> dict[str, list[str]]:
    """Write every schema (only files whose text changed) and delete schemas no model makes."""
    directory.mkdir(parents=True, exist_ok=True)
    result: dict[str, list[str]] = {"written": [], "unchanged": [], "removed": []}
    for name, text in sorted(render_all().items()):
        path = directory / name
        if path.is_file() and path.read_text() == text:
            result["unchanged"].append(name)
            continue
        _write_atomic(path, text)
        result["written"].append(name)
    for name in compare(directory).extra:
        (directory / name).unlink()
        result["removed"].append(name)
    return result


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; schemas are public files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["SUFFIX", "SchemaDiff", "compare", "export", "render", "render_all"]
