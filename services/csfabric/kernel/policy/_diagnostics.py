"""Where a policy mistake is and how to say it: YAML lines and readable pydantic errors.

Pydantic knows the path of a bad field but not the line it was written on, and its
messages are written for programmers; operators get the line of the offending key (from
the YAML node tree) and a sentence saying what was expected instead.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Loc = tuple[int | str, ...]


def field_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def locate(node: Node, loc: Loc) -> int:
    """Line of the deepest key of ``loc`` present in the YAML (a missing key: its parent)."""
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value == str(part):
                    line, node = key.start_mark.line + 1, value
                    break
            else:
                return line
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def duplicate_keys(
    node: Node, loc: Loc, seen: set[int] | None = None
) -> Iterator[tuple[int, str, str]]:
    seen = set() if seen is None else seen
    if id(node) in seen:  # aliases can make the node graph cyclic
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else None
            if name is not None and name in first:
                where = key.start_mark.line + 1
                yield (
                    where,
                    field_path((*loc, name)),
                    f"duplicate key (first at line {first[name]})",
                )
            elif name is not None:
                first[name] = key.start_mark.line + 1
            yield from duplicate_keys(value, (*loc, name or "?"), seen)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            yield from duplicate_keys(item, (*loc, i), seen)


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}
_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}


def show(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    name = _TYPE_NAMES.get(type(value), type(value).__name__)
    return f"the {name} {value!r}"


def describe(error: ErrorDetails, model: type[BaseModel]) -> str:
    kind, loc, value = error["type"], error["loc"], error.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(str(loc[-1]), _keys_at(model, loc[:-1]))
    if kind == "missing":
        return "missing required field"
    if kind in _EXPECTED:
        return f"wrong type: expected {_EXPECTED[kind]}, got {show(value)}"
    if kind == "literal_error":
        return f"expected {error.get('ctx', {}).get('expected')}, got {show(value)}"
    if kind in ("duration", "scope_matches_nothing", "policy_name"):
        return error["msg"]
    message = error["msg"].removeprefix("Value error, ")
    return f"{message}, got {show(value)}" if kind.startswith(("greater", "less")) else message


def _unknown_key(key: str, allowed: list[str]) -> str:
    if not allowed:
        return f"unknown key {key!r}"
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}; allowed keys: {', '.join(allowed)}"


def _keys_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the model accepts at ``loc``: what an unknown-key error offers instead."""
    annotation: Any = model
    for part in loc:
        target = _model_in(annotation)
        if isinstance(part, str) and target is not None:
            fields = target.model_fields
            match = [f for name, f in fields.items() if part in (name, f.alias)]
            if not match:
                return []
            annotation = match[0].annotation
        else:  # a list index or a dict key: step into the element type
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = _element(args)
    target = _model_in(annotation)
    if target is None:
        return []
    return [f.alias or name for name, f in target.model_fields.items()]


def _element(args: list[Any]) -> Any:
    for arg in args:
        inner = typing.get_args(arg)
        if typing.get_origin(arg) in (list, dict) and inner:
            return inner[-1]
    return args[-1] if args else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (list, dict):
        return None
    for arg in typing.get_args(annotation):  # Optional[...] and Annotated[...]
        found = _model_in(arg)
        if found is not None:
            return found
    return None


__all__ = ["Loc", "describe", "duplicate_keys", "field_path", "locate", "show"]
