"""Read policy YAML from files and directories, validating everything before returning.

Every mistake in every file is collected and reported together, each with its file, the
line of the offending key and the dotted field path, so an operator fixes a directory in
one pass.  Nothing is returned unless everything is valid: the store can then apply the
whole set or nothing.  Line numbers come from the YAML node tree (``yaml.compose``),
because pydantic only knows the path of a field, not where it was written.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from yaml.nodes import Node

from csfabric.kernel.errors import ConfigError
from csfabric.kernel.policy._diagnostics import describe, duplicate_keys, field_path, locate, show
from csfabric.kernel.policy._model import Metadata, PolicyDocument, document_model, known_kinds
from csfabric.kernel.policy.errors import PolicyLoadError, PolicyProblem

_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedPolicy:
    document: PolicyDocument
    source: str
    line: int


class _Envelope(BaseModel):
    """Checks apiVersion and metadata of a document whose kind is unknown."""

    model_config = ConfigDict(extra="forbid")
    apiVersion: typing.Literal["csfabric/v1"]
    kind: Any = None  # reported by the caller, which knows the registered kinds
    metadata: Metadata
    spec: dict[str, Any]


def load_policies(paths: Sequence[Path]) -> list[LoadedPolicy]:
    """Every policy in ``paths`` (files, or directories searched recursively for YAML)."""
    problems: list[PolicyProblem] = []
    loaded: list[LoadedPolicy] = []
    seen: set[Path] = set()
    for path in paths:
        if not (path.is_dir() or path.is_file()):
            problems.append(PolicyProblem(str(path), None, "", "no such file or directory"))
        for file in _files(path):
            if file.resolve() in seen:  # the same file named twice is read once
                continue
            seen.add(file.resolve())
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(PolicyProblem(str(file), None, "", f"cannot read: {exc}"))
                continue
            loaded += _parse(text, str(file), problems)
    return _finish(loaded, problems)


def parse_policy_text(text: str, source: str = "<string>") -> list[LoadedPolicy]:
    """Like :func:`load_policies` for YAML already in memory (stdin, tests)."""
    problems: list[PolicyProblem] = []
    return _finish(_parse(text, source, problems), problems)


def _finish(loaded: list[LoadedPolicy], problems: list[PolicyProblem]) -> list[LoadedPolicy]:
    seen: dict[str, LoadedPolicy] = {}
    for policy in loaded:
        first = seen.setdefault(policy.document.key, policy)
        if first is not policy:
            problems.append(
                PolicyProblem(
                    policy.source,
                    policy.line,
                    "metadata.name",
                    f"duplicate policy {policy.document.key}: "
                    f"already defined at {first.source}:{first.line}",
                )
            )
    if problems:
        raise PolicyLoadError(problems)
    return loaded


def _files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path] if path.is_file() else []
    # Hidden files and directories (.git, editor backups) are never policies.
    return sorted(
        p
        for p in path.rglob("*")
        if p.suffix in _SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )


def _documents(text: str, source: str, problems: list[PolicyProblem]) -> Iterator[tuple[Any, Node]]:
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node guarantees a node
                continue
            # Duplicate keys first: construction would silently keep only the last one.
            for line, field, message in duplicate_keys(node, ()):
                problems.append(PolicyProblem(source, line, field, message))
            yield loader.construct_document(node), node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # The mark of an unclosed bracket is past the last line; point at the last line.
        where = min(mark.line + 1, max(1, len(text.splitlines()))) if mark else None
        what = ", ".join(filter(None, (exc.context, exc.problem)))
        problems.append(PolicyProblem(source, where, "", f"invalid YAML: {what}"))
    except yaml.YAMLError as exc:
        problems.append(PolicyProblem(source, None, "", f"invalid YAML: {exc}"))
    finally:
        loader.dispose()


def _parse(text: str, source: str, problems: list[PolicyProblem]) -> list[LoadedPolicy]:
    loaded: list[LoadedPolicy] = []
    start = len(problems)
    for data, node in _documents(text, source, problems):
        if data is None:  # an empty document ("---" at the end of a file)
            continue
        found = _check(data, node, source, problems)
        if found is not None:
            loaded.append(LoadedPolicy(found, source, node.start_mark.line + 1))
    # Read top to bottom: an operator fixes a file in the order its lines come.
    problems[start:] = sorted(problems[start:], key=lambda p: p.line or 0)
    return loaded


def _check(
    data: Any, node: Node, source: str, problems: list[PolicyProblem]
) -> PolicyDocument | None:
    line = node.start_mark.line + 1
    if not isinstance(data, dict):
        problems.append(
            PolicyProblem(
                source, line, "", "expected a mapping with apiVersion, kind, metadata and spec"
            )
        )
        return None
    kind = data.get("kind")
    model: type[BaseModel] = _Envelope
    mine: list[PolicyProblem] = []
    if "kind" not in data:
        mine.append(PolicyProblem(source, line, "kind", _missing_kind()))
    elif not isinstance(kind, str):
        got = f"expected a string naming a policy kind, got {show(kind)}"
        mine.append(PolicyProblem(source, locate(node, ("kind",)), "kind", got))
    else:
        try:
            model = document_model(kind)
        except ConfigError as exc:
            mine.append(PolicyProblem(source, locate(node, ("kind",)), "kind", str(exc)))
    try:
        document = model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            # A model-level check names the field it means in ctx["at"].
            at = str(error.get("ctx", {}).get("at", ""))
            loc = (*error["loc"], *(at.split(".") if at else ()))
            message = describe(error, model)
            mine.append(PolicyProblem(source, locate(node, loc), field_path(loc), message))

    problems += mine
    if mine or not isinstance(document, PolicyDocument):
        return None
    return document


def _missing_kind() -> str:
    known = ", ".join(known_kinds()) or "none yet"
    return f"missing required field; expected a policy kind (known kinds: {known})"


__all__ = [
    "LoadedPolicy",
    "load_policies",
    "parse_policy_text",
]
