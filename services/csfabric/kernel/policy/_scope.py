"""Which resources a policy applies to: :class:`Scope` matched against a :class:`ResourceRef`.

A scope that can never match anything is rejected when the policy is validated, not
discovered weeks later when a policy has quietly done nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

PROTECT_TAG = "csfabric:protect"


def matches_nothing(why: str, at: str = "") -> PydanticCustomError:
    # One error type for every "this scope can never match" mistake, so the loader and
    # tests can tell it from an ordinary type error.  ``at`` names the field (relative to
    # the model) when a model-level check raises it, so the loader can point at its line.
    context = {"why": why, "at": at} if at else {"why": why}
    return PydanticCustomError("scope_matches_nothing", "scope matches nothing: {why}", context)


def is_true(value: str | None) -> bool:
    # Lenient on purpose: "True" on a resource means "protect it" to any human reader.
    return value is not None and value.strip().lower() == "true"


@dataclass(frozen=True)
class ResourceRef:
    """What a scope is matched against: a CloudStack resource's name, owner and tags."""

    name: str
    domain_path: str | None = None
    account: str | None = None
    project: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


def _pattern(value: str) -> str:
    if not value:
        raise matches_nothing("an empty name pattern matches no resource")
    return value


class Scope(BaseModel):
    """Which resources a policy applies to; every given criterion must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str | None = Field(
        None, description="CloudStack domain path, e.g. ROOT/gov-sandbox; matches its subtree"
    )
    account: str | None = None
    project: str | None = None
    tags: dict[str, str] = Field(default_factory=dict, description="all must match exactly")
    names: list[Annotated[str, AfterValidator(_pattern)]] | None = Field(
        None, description="glob patterns (fnmatch); any may match"
    )

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = value.split("/")
        if parts[0] != "ROOT":
            raise matches_nothing(
                f"domain {value!r} is not under ROOT (CloudStack domain paths start at ROOT)"
            )
        if "" in parts:
            raise matches_nothing(f"domain {value!r} has an empty path segment")
        return value

    @field_validator("account", "project")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise matches_nothing(
                "an empty name matches no owner; leave the field out to match any owner"
            )
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        if "" in value:
            raise matches_nothing("a tag with an empty key matches no resource")
        if is_true(value.get(PROTECT_TAG)):
            raise matches_nothing(f"resources tagged {PROTECT_TAG}=true are always exempt")
        return value

    @field_validator("names")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise matches_nothing(
                "an empty names list matches no resource; leave it out to match any name"
            )
        return value

    def matches(self, ref: ResourceRef) -> bool:
        """Whether ``ref`` is in scope (protection is checked separately, and wins)."""
        if self.domain is not None:
            path = ref.domain_path
            if path is None or not (path == self.domain or path.startswith(self.domain + "/")):
                return False
        if self.account is not None and ref.account != self.account:
            return False
        if self.project is not None and ref.project != self.project:
            return False
        if any(ref.tags.get(key) != want for key, want in self.tags.items()):
            return False
        return self.names is None or any(fnmatchcase(ref.name, p) for p in self.names)


__all__ = ["PROTECT_TAG", "ResourceRef", "Scope", "is_true", "matches_nothing"]
