"""PolicyBase, scopes, protection and the kind registry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from csfabric.kernel import ConfigError
from csfabric.kernel.policy import _model as policies
from csfabric.kernel.policy._model import (
    PROTECT_TAG,
    PolicyBase,
    PolicyDocument,
    ResourceRef,
    Scope,
    document_model,
    kind_model,
    kind_schemas,
    known_kinds,
    parse_document,
    register_kind,
    unregister_kind,
)
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.policykinds import TEST_KIND, TestPolicySpec, register_test_kinds


@pytest.fixture(autouse=True)
def _kinds() -> None:
    register_test_kinds()


def doc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "csfabric/v1",
        "kind": TEST_KIND,
        "metadata": {"name": "nightly"},
        "spec": spec,
    }


REF = ResourceRef(
    name="db-01",
    domain_path="ROOT/gov-sandbox/fintech-projects",
    account="fintech",
    project="payments",
    tags={"env": "dev", "team": "storage"},
)


@pytest.mark.parametrize(
    ("scope", "matches"),
    [
        ({}, True),
        ({"domain": "ROOT"}, True),
        ({"domain": "ROOT/gov-sandbox"}, True),
        ({"domain": "ROOT/gov-sandbox/fintech-projects"}, True),
        ({"domain": "ROOT/gov-sandbo"}, False),
        ({"domain": "ROOT/gov-sandbox/fintech"}, False),
        ({"domain": "ROOT/gov-sandbox/fintech-projects/deeper"}, False),
        ({"account": "fintech"}, True),
        ({"account": "other"}, False),
        ({"project": "payments"}, True),
        ({"project": "billing"}, False),
        ({"tags": {"env": "dev"}}, True),
        ({"tags": {"env": "dev", "team": "storage"}}, True),
        ({"tags": {"env": "dev", "team": "web"}}, False),
        ({"tags": {"owner": "x"}}, False),
        ({"names": ["db-*"]}, True),
        ({"names": ["web-*", "db-0?"]}, True),
        ({"names": ["DB-*"]}, False),
        ({"names": ["web-*"]}, False),
        ({"domain": "ROOT/gov-sandbox", "account": "fintech", "names": ["db-*"]}, True),
        ({"domain": "ROOT/gov-sandbox", "account": "other", "names": ["db-*"]}, False),
    ],
)
def test_scope_matches(scope: dict[str, Any], matches: bool) -> None:
    assert Scope.model_validate(scope).matches(REF) is matches


def test_domain_matches_its_subtree_not_a_sibling_with_the_same_prefix() -> None:
    scope = Scope(domain="ROOT/gov-sandbox")
    assert scope.matches(ResourceRef("vm", domain_path="ROOT/gov-sandbox"))
    assert scope.matches(ResourceRef("vm", domain_path="ROOT/gov-sandbox/fintech-projects"))
    assert not scope.matches(ResourceRef("vm", domain_path="ROOT/gov-sandboxx"))
    assert not scope.matches(ResourceRef("vm", domain_path="ROOT"))
    assert not scope.matches(ResourceRef("vm"))  # unknown domain: never assume it is inside


def test_owner_criteria_need_a_known_owner() -> None:
    assert not Scope(account="fintech").matches(ResourceRef("vm"))
    assert not Scope(project="payments").matches(ResourceRef("vm"))


@pytest.mark.parametrize(
    ("scope", "field", "why"),
    [
        ({"names": []}, "names", "empty names list"),
        ({"names": ["db-*", ""]}, "names.1", "empty name pattern"),
        ({"tags": {PROTECT_TAG: "true"}}, "tags", "always exempt"),
        ({"tags": {PROTECT_TAG: "True"}}, "tags", "always exempt"),
        ({"tags": {"": "x"}}, "tags", "empty key"),
        ({"domain": "gov-sandbox"}, "domain", "start at ROOT"),
        ({"domain": "root/gov-sandbox"}, "domain", "start at ROOT"),
        ({"domain": ""}, "domain", "start at ROOT"),
        ({"domain": "ROOT/gov-sandbox/"}, "domain", "empty path segment"),
        ({"account": ""}, "account", "matches no owner"),
        ({"project": " "}, "project", "matches no owner"),
    ],
)
def test_scopes_that_match_nothing_are_rejected(
    scope: dict[str, Any], field: str, why: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Scope.model_validate(scope)
    [error] = caught.value.errors()
    assert error["type"] == "scope_matches_nothing"
    assert ".".join(map(str, error["loc"])) == field
    assert error["msg"].startswith("scope matches nothing: ")
    assert why in error["msg"]


def test_a_scope_requiring_the_policys_own_protect_tag_matches_nothing() -> None:
    with pytest.raises(ValidationError, match="keep=true are exempt"):
        TestPolicySpec.model_validate({"protectTag": "keep", "scope": {"tags": {"keep": "true"}}})
    # The same tag with another value is an ordinary criterion.
    TestPolicySpec.model_validate({"protectTag": "keep", "scope": {"tags": {"keep": "no"}}})


def test_protection_always_wins() -> None:
    spec = TestPolicySpec.model_validate({"protectTag": "keep", "scope": {"tags": {"env": "dev"}}})
    ref = ResourceRef("db-01", tags={"env": "dev"})
    assert spec.applies_to(ref)
    for tags in ({PROTECT_TAG: "true"}, {PROTECT_TAG: "TRUE"}, {"keep": "true"}):
        protected = ResourceRef("db-01", tags={"env": "dev", **tags})
        assert spec.scope.matches(protected)
        assert spec.is_protected(protected.tags)
        assert not spec.applies_to(protected)
    assert not spec.is_protected({PROTECT_TAG: "false"})
    # A policy cannot opt out of the global tag by choosing its own.
    assert spec.is_protected({PROTECT_TAG: "true", "keep": "false"})


@given(st.dictionaries(st.text(max_size=5), st.text(max_size=5)), st.text(max_size=8))
def test_protected_resources_are_never_acted_on(tags: dict[str, str], name: str) -> None:
    spec = TestPolicySpec()
    ref = ResourceRef(name, tags={**tags, PROTECT_TAG: "true"})
    assert not spec.applies_to(ref)


def test_base_defaults_and_camel_case_aliases() -> None:
    spec = TestPolicySpec.model_validate(
        {"dryRun": True, "blastRadius": {"max": 2, "per": "1h"}, "every": "PT5M"}
    )
    assert spec.dry_run is True
    assert spec.blast_radius is not None
    assert spec.blast_radius.per == timedelta(hours=1)
    assert spec.every == timedelta(minutes=5)
    assert spec.protect_tag == PROTECT_TAG
    assert spec.paused is False
    assert spec.scope == Scope()
    assert spec.action == "noop"
    assert spec.retain == 3
    # populate_by_name: code may build specs with Python names.
    assert TestPolicySpec(dry_run=True).dry_run is True


@pytest.mark.parametrize(
    ("blast", "kind"),
    [({"max": 0, "per": "1h"}, "greater_than_equal"), ({"max": 1, "per": "0s"}, "duration")],
)
def test_blast_radius_limits(blast: dict[str, Any], kind: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TestPolicySpec.model_validate({"blastRadius": blast})
    assert caught.value.errors()[0]["type"] == kind


def test_parse_document_gives_the_kinds_model_and_round_trips() -> None:
    document = parse_document(doc(every="P1DT2H", retain=7, scope={"domain": "ROOT/x"}))
    assert isinstance(document, PolicyDocument)
    assert isinstance(document.spec, TestPolicySpec)
    assert document.key == "TestPolicy.nightly"
    stored = document.to_dict()
    assert stored["apiVersion"] == "csfabric/v1"
    assert stored["spec"]["every"] == "1d2h"
    assert stored["spec"]["retain"] == 7
    assert stored["spec"]["dryRun"] is False
    assert parse_document(stored) == document


def test_a_base_document_still_dumps_the_kinds_fields() -> None:
    document = PolicyDocument.model_validate({**doc(), "spec": TestPolicySpec(retain=5)})
    assert document.to_dict()["spec"]["retain"] == 5


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"apiVersion": "csfabric/v2"}, ("apiVersion",)),
        ({"metadata": {"name": "Nightly"}}, ("metadata", "name")),
        ({"metadata": {"name": "a" * 64}}, ("metadata", "name")),
        ({"metadata": {"name": "-x"}}, ("metadata", "name")),
        ({"metadata": {"name": "x", "owner": "me"}}, ("metadata", "owner")),
        ({"spec": {"retain": "x"}}, ("spec", "retain")),
        ({"extra": 1}, ("extra",)),
    ],
)
def test_parse_document_rejects(change: dict[str, Any], loc: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_document({**doc(), **change})
    assert [e["loc"] for e in caught.value.errors()] == [loc]


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_document({**doc(), "kind": "NoSuchPolicy"})
    assert str(caught.value) == (
        f"unknown kind 'NoSuchPolicy': known kinds are {', '.join(known_kinds())}"
        " (a kind is registered by the service that reads it)"
    )
    with pytest.raises(ConfigError, match="must be a string"):
        parse_document({**doc(), "kind": 3})


class OtherSpec(PolicyBase):
    size: int = 1


@pytest.fixture
def other_kind() -> Iterator[str]:
    register_kind("OtherPolicy", OtherSpec)
    yield "OtherPolicy"
    unregister_kind("OtherPolicy")


def test_registry(other_kind: str) -> None:
    assert kind_model(other_kind) is OtherSpec
    assert {TEST_KIND, other_kind} <= set(known_kinds())
    register_kind(other_kind, OtherSpec)  # idempotent
    with pytest.raises(ConfigError, match="already registered"):
        register_kind(other_kind, TestPolicySpec)
    with pytest.raises(ConfigError, match="bad kind name"):
        register_kind("other-policy", OtherSpec)
    with pytest.raises(ConfigError, match="does not extend PolicyBase"):
        register_kind("Plain", dict)  # type: ignore[arg-type]
    unregister_kind(other_kind)
    assert other_kind not in known_kinds()


class _EntryPoint:
    def __init__(self, name: str, obj: object) -> None:
        self.name, self.value, self._obj = name, f"fake:{name}", obj

    def load(self) -> object:
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def test_entry_points_register_kinds_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    found = [_EntryPoint("PluginPolicy", OtherSpec), _EntryPoint("Broken", ImportError("x"))]
    monkeypatch.setattr(policies, "entry_points", lambda group: found)
    monkeypatch.setattr(policies, "_loaded", False)
    try:
        assert "PluginPolicy" in known_kinds()
        assert "Broken" not in known_kinds()
        schemas = kind_schemas()
        assert "PluginPolicy" in schemas
        assert TEST_KIND not in schemas  # run-time kinds stay out
        assert schemas["PluginPolicy"]["properties"]["kind"]["const"] == "PluginPolicy"
    finally:
        unregister_kind("PluginPolicy")


def test_kind_schema_is_the_whole_document() -> None:
    schema = kind_schemas(installed_only=False)[TEST_KIND]
    assert schema["required"] == ["apiVersion", "kind", "metadata", "spec"]
    spec = schema["$defs"]["TestPolicySpec"]
    assert spec["additionalProperties"] is False
    assert {"dryRun", "scope", "protectTag", "blastRadius", "paused", "every", "retain"} <= set(
        spec["properties"]
    )
    assert "pattern" in spec["properties"]["every"]["anyOf"][0]
    assert document_model(TEST_KIND) is document_model(TEST_KIND)
