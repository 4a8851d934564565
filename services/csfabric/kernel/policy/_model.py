"""Policy documents: the common ``PolicyBase``, scopes, and the registry of kinds.

A policy is ``{apiVersion: csfabric/v1, kind, metadata, spec}``.  Every kind's spec model
extends :class:`PolicyBase`; services register their kinds (entry-point group
:data:`POLICY_KINDS_GROUP`, name = kind, object = the model), so a kind is unknown until
the service that reads it is installed.  Validation is strict (unknown keys are errors)
because a typo in a policy that silently falls back to a default is an outage waiting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from csfabric.kernel._durations import Duration
from csfabric.kernel._logs import get_logger
from csfabric.kernel.errors import ConfigError
from csfabric.kernel.policy._scope import PROTECT_TAG, ResourceRef, Scope, is_true, matches_nothing

log = get_logger(__name__)

API_VERSION = "csfabric/v1"
POLICY_KINDS_GROUP = "csfabric.policy_kinds"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_KIND_PATTERN = r"^[A-Z][A-Za-z0-9]*$"


class BlastRadius(BaseModel):
    """At most ``max`` actions per ``per`` window, then the policy pauses itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int = Field(ge=1)
    per: Duration

    @field_validator("per")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if not value:
            raise PydanticCustomError("duration", "a blast-radius window must be longer than 0s")
        return value


def _open_base_schema(schema: dict[str, Any], cls: type) -> None:
    # PolicyBase alone is published as "the fields every kind has"; its kinds add more, so
    # only the base's own schema must not claim that no other key is allowed.
    if cls is PolicyBase:
        schema.pop("additionalProperties", None)


class PolicyBase(BaseModel):
    """The spec fields every policy kind has.  Kinds subclass this and add their own."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        json_schema_extra=_open_base_schema,
    )

    dry_run: bool = Field(False, description="decide and audit, but never act")
    scope: Scope = Field(default_factory=Scope)
    protect_tag: str = Field(
        PROTECT_TAG, description=f"an extra tag that exempts a resource; {PROTECT_TAG} always does"
    )
    blast_radius: BlastRadius | None = None
    paused: bool = False

    @model_validator(mode="after")
    def _own_protect_tag(self) -> PolicyBase:
        if is_true(self.scope.tags.get(self.protect_tag)):
            why = f"resources tagged {self.protect_tag}=true are exempt from this policy"
            raise matches_nothing(why, at="scope.tags")
        return self

    def is_protected(self, tags: Mapping[str, str]) -> bool:
        """``csfabric:protect=true`` always wins; so does the policy's own protect tag."""
        return is_true(tags.get(PROTECT_TAG)) or is_true(tags.get(self.protect_tag))

    def applies_to(self, ref: ResourceRef) -> bool:
        """In scope and not protected: the one check an actuator needs."""
        return self.scope.matches(ref) and not self.is_protected(ref.tags)


def _check_name(value: str) -> str:
    if len(value) > 63 or not re.match(NAME_PATTERN, value):
        raise PydanticCustomError(
            "policy_name",
            "bad name {name}: expected at most 63 lowercase letters, digits and '-',"
            " starting and ending with a letter or digit (like a DNS label)",
            {"name": repr(value)},
        )
    return value


class Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, AfterValidator(_check_name)] = Field(
        json_schema_extra={"pattern": NAME_PATTERN, "maxLength": 63}
    )
    labels: dict[str, str] = Field(default_factory=dict)
    description: str | None = None


class PolicyDocument(BaseModel):
    """A whole policy; ``spec`` is an instance of the kind's model."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    api_version: Literal["csfabric/v1"] = Field(alias="apiVersion")
    kind: str
    metadata: Metadata
    # SerializeAsAny: dump the kind's own fields, not only PolicyBase's.
    spec: SerializeAsAny[PolicyBase]

    @property
    def key(self) -> str:
        """The store key, ``<kind>.<name>``."""
        return f"{self.kind}.{self.metadata.name}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, camelCase: the form the store keeps and ``policy show`` prints."""
        return self.model_dump(by_alias=True, mode="json")


# ---- the registry of kinds ---------------------------------------------------------

_kinds: dict[str, type[PolicyBase]] = {}
_installed: set[str] = set()
_loaded = False


def register_kind(kind: str, model: type[PolicyBase]) -> None:
    """Make ``kind`` known; registering the same model again is harmless."""
    if not re.match(_KIND_PATTERN, kind):
        raise ConfigError(f"bad kind name {kind!r}: expected CamelCase like SnapshotPolicy")
    if not (isinstance(model, type) and issubclass(model, PolicyBase)):
        raise ConfigError(f"kind {kind!r}: {model!r} does not extend PolicyBase")
    current = _kinds.get(kind)
    if current is not None and current is not model:
        raise ConfigError(f"kind {kind!r} is already registered by {current.__module__}")
    _kinds[kind] = model


def unregister_kind(kind: str) -> None:
    """Forget ``kind`` (for tests)."""
    _kinds.pop(kind, None)
    _installed.discard(kind)
    document_model.cache_clear()


def _load_entry_points() -> None:
    # Lazy: importing every installed service's models costs time nobody needs until a
    # policy is actually parsed.
    global _loaded
    if _loaded:
        return
    _loaded = True
    for ep in entry_points(group=POLICY_KINDS_GROUP):
        try:
            register_kind(ep.name, ep.load())
            _installed.add(ep.name)
        except Exception as exc:  # one broken plugin must not hide every other kind
            log.warning("policy kind %s from %s not loaded: %s", ep.name, ep.value, exc)


def known_kinds() -> list[str]:
    _load_entry_points()
    return sorted(_kinds)


def kind_model(kind: str) -> type[PolicyBase]:
    _load_entry_points()
    try:
        return _kinds[kind]
    except KeyError:
        known = ", ".join(sorted(_kinds)) or "none yet"
        raise ConfigError(
            f"unknown kind {kind!r}: known kinds are {known}"
            " (a kind is registered by the service that reads it)"
        ) from None


@cache
def document_model(kind: str) -> type[PolicyDocument]:
    """A document model whose ``kind`` and ``spec`` are the kind's: one schema, all errors."""
    model = kind_model(kind)
    return create_model(
        f"{kind}Document",
        __base__=PolicyDocument,
        __doc__=f"A {kind} policy document.",
        kind=(Literal[kind], ...),  # type: ignore[arg-type]
        spec=(model, ...),
    )


def parse_document(data: Mapping[str, Any]) -> PolicyDocument:
    """Validate one document; raises ConfigError (bad kind) or pydantic's ValidationError."""
    kind = data.get("kind")
    if not isinstance(kind, str):
        raise ConfigError(f"'kind' must be a string naming a policy kind, got {kind!r}")
    return document_model(kind).model_validate(dict(data))


def kind_schemas(*, installed_only: bool = True) -> dict[str, dict[str, Any]]:
    """``{kind: JSON Schema of its whole document}``.

    ``installed_only`` keeps kinds registered at run time (tests) out of ``schemas/``:
    only kinds that installed services declare through entry points are published.
    """
    _load_entry_points()
    kinds = sorted(_installed if installed_only else _kinds)
    return {k: document_model(k).model_json_schema(by_alias=True) for k in kinds}


__all__ = [
    "API_VERSION",
    "NAME_PATTERN",
    "POLICY_KINDS_GROUP",
    "PROTECT_TAG",
    "BlastRadius",
    "Metadata",
    "PolicyBase",
    "PolicyDocument",
    "ResourceRef",
    "Scope",
    "document_model",
    "kind_model",
    "kind_schemas",
    "known_kinds",
    "parse_document",
    "register_kind",
    "unregister_kind",
]
