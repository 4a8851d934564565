"""The policy loader: every mistake reported with file, line and field; all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from csfabric.kernel import ConfigError
from csfabric.kernel.policy import PolicyLoadError, PolicyProblem
from csfabric.kernel.policy._load import (
    LoadedPolicy,
    load_policies,
    parse_policy_text,
)

from tests.policykinds import TestPolicySpec, register_test_kinds

FIXTURES = Path(__file__).parent.parent / "fixtures" / "policies"
MISTAKES = FIXTURES / "mistakes"
ALLOWED_SPEC = "dryRun, scope, protectTag, blastRadius, paused, every, action, retain"


@pytest.fixture(autouse=True)
def _kinds() -> None:
    register_test_kinds()


def problems_of(*paths: Path) -> list[tuple[str, int | None, str, str]]:
    with pytest.raises(PolicyLoadError) as caught:
        load_policies(list(paths))
    return [(Path(p.file).name, p.line, p.field, p.message) for p in caught.value.problems]


def test_valid_directory_recursive_multi_document() -> None:
    loaded = load_policies([FIXTURES / "valid"])
    assert [(p.document.key, Path(p.source).relative_to(FIXTURES), p.line) for p in loaded] == [
        ("TestPolicy.cleanup", Path("valid/nested/cleanup.yml"), 1),
        ("TestPolicy.nightly", Path("valid/snapshots.yaml"), 2),
        ("TestPolicy.hourly", Path("valid/snapshots.yaml"), 16),
    ]
    nightly = loaded[1].document
    assert isinstance(nightly.spec, TestPolicySpec)
    assert nightly.spec.retain == 7
    assert nightly.spec.dry_run is True
    assert nightly.metadata.labels == {"team": "storage"}
    assert loaded[0].document.spec.scope.tags == {"env": "dev"}


def test_files_and_directories_mix_and_a_file_named_twice_is_read_once() -> None:
    nested = FIXTURES / "valid" / "nested" / "cleanup.yml"
    loaded = load_policies([nested, FIXTURES / "valid"])
    assert [p.document.key for p in loaded] == [
        "TestPolicy.cleanup",
        "TestPolicy.nightly",
        "TestPolicy.hourly",
    ]


def test_one_bad_file_means_no_policies_at_all() -> None:
    assert problems_of(FIXTURES / "one-bad") == [
        (
            "bad.yaml",
            7,
            "spec.retian",
            f"unknown key 'retian' (did you mean 'retain'?); allowed keys: {ALLOWED_SPEC}",
        )
    ]


# Each kind of mistake, with the exact file, line, field and message.
CASES = {
    "unknown-key.yaml": [
        (10, "spec.blastRadius.burst", "unknown key 'burst'; allowed keys: max, per"),
    ],
    "wrong-type.yaml": [
        (6, "spec.retain", "wrong type: expected an integer, got the string 'three'"),
        (7, "spec.dryRun", "wrong type: expected true or false, got the string 'maybe'"),
    ],
    "bad-duration.yaml": [
        (
            6,
            "spec.every",
            "bad duration '15 minutes': expected e.g. 30s, 15m, 7d or ISO 8601 such as PT15M",
        ),
    ],
    "unknown-kind.yaml": [
        (
            2,
            "kind",
            "unknown kind 'SnapshotPolicyy': known kinds are SnapshotPolicy, TestPolicy"
            " (a kind is registered by the service that reads it)",
        ),
    ],
    "missing-field.yaml": [(6, "spec.blastRadius.per", "missing required field")],
    "bad-api-version.yaml": [
        (1, "apiVersion", "expected 'csfabric/v1', got the string 'csfabric/v2'")
    ],
    "bad-name.yaml": [
        (
            4,
            "metadata.name",
            "bad name 'Nightly_Snapshots': expected at most 63 lowercase letters, digits and '-',"
            " starting and ending with a letter or digit (like a DNS label)",
        ),
    ],
    "scope-nothing.yaml": [
        (
            7,
            "spec.scope.domain",
            "scope matches nothing: domain 'gov-sandbox' is not under ROOT"
            " (CloudStack domain paths start at ROOT)",
        ),
        (
            8,
            "spec.scope.account",
            "scope matches nothing: an empty name matches no owner;"
            " leave the field out to match any owner",
        ),
        (
            9,
            "spec.scope.project",
            "scope matches nothing: an empty name matches no owner;"
            " leave the field out to match any owner",
        ),
        (
            10,
            "spec.scope.tags",
            "scope matches nothing: resources tagged csfabric:protect=true are always exempt",
        ),
        (
            14,
            "spec.scope.names[1]",
            "scope matches nothing: an empty name pattern matches no resource",
        ),
        (
            22,
            "spec.scope.names",
            "scope matches nothing: an empty names list matches no resource;"
            " leave it out to match any name",
        ),
        (
            31,
            "spec.scope.tags",
            "scope matches nothing: resources tagged keep=true are exempt from this policy",
        ),
    ],
    "bad-yaml.yaml": [
        (
            6,
            "",
            "invalid YAML: while parsing a flow sequence, expected ',' or ']',"
            " but got '<stream end>'",
        ),
    ],
    "duplicate-key.yaml": [(7, "spec.every", "duplicate key (first at line 6)")],
    "not-a-mapping.yaml": [(1, "", "expected a mapping with apiVersion, kind, metadata and spec")],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_mistake_is_reported_precisely(name: str) -> None:
    expected = [(name, line, field, message) for line, field, message in CASES[name]]
    assert problems_of(MISTAKES / name) == expected


def test_a_directory_reports_every_mistake_in_every_file() -> None:
    found = problems_of(MISTAKES)
    expected = [
        (name, line, field, message)
        for name in sorted(CASES)
        for line, field, message in CASES[name]
    ]
    assert found == expected


def test_problem_and_error_text() -> None:
    with pytest.raises(PolicyLoadError) as caught:
        load_policies([MISTAKES / "wrong-type.yaml", FIXTURES / "missing.yaml"])
    error = caught.value
    assert isinstance(error, ConfigError)
    file = str(MISTAKES / "wrong-type.yaml")
    assert str(error).splitlines() == [
        f"{file}:6: spec.retain: wrong type: expected an integer, got the string 'three'",
        f"{file}:7: spec.dryRun: wrong type: expected true or false, got the string 'maybe'",
        f"{FIXTURES / 'missing.yaml'}: no such file or directory",
    ]
    assert str(PolicyProblem("a.yaml", None, "spec", "m")) == "a.yaml: spec: m"


def test_duplicate_kind_and_name_across_files() -> None:
    assert problems_of(FIXTURES / "dupes") == [
        (
            "second.yaml",
            2,
            "metadata.name",
            "duplicate policy TestPolicy.same: already defined at"
            f" {FIXTURES / 'dupes' / 'first.yaml'}:1",
        )
    ]


def test_unknown_kind_still_checks_the_rest_of_the_envelope() -> None:
    text = "apiVersion: v0\nkind: Nope\nmetadata:\n  name: UPPER\n  colour: red\nspec: {}\n"
    with pytest.raises(PolicyLoadError) as caught:
        parse_policy_text(text, "inline.yaml")
    assert [(p.line, p.field) for p in caught.value.problems] == [
        (1, "apiVersion"),
        (2, "kind"),
        (4, "metadata.name"),
        (5, "metadata.colour"),
    ]
    assert "allowed keys: name, labels, description" in caught.value.problems[-1].message


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("apiVersion: csfabric/v1\nmetadata: {name: a}\nspec: {}\n", 1, "kind", "missing required"),
        (
            "apiVersion: csfabric/v1\nkind: [1]\nmetadata: {name: a}\nspec: {}\n",
            2,
            "kind",
            "expected a string",
        ),
        ("kind: TestPolicy\napiVersion: csfabric/v1\nmetadata: {name: a}\n", 1, "spec", "missing"),
        (
            "kind: TestPolicy\napiVersion: csfabric/v1\nmetadata: {name: a}\nspec:\n"
            "  retain: 1.5\n",
            5,
            "spec.retain",
            "expected a whole number, got the number 1.5",
        ),
        (
            "kind: TestPolicy\napiVersion: csfabric/v1\nmetadata: {name: a}\nspec:\n  scope: [a]\n",
            5,
            "spec.scope",
            "expected a mapping, got the list ['a']",
        ),
        (
            "kind: TestPolicy\napiVersion: csfabric/v1\nmetadata: {name: a}\nspec:\n"
            "  blastRadius: {max: 0, per: 1h}\n",
            5,
            "spec.blastRadius.max",
            "greater than or equal to 1, got the integer 0",
        ),
        (
            "kind: TestPolicy\napiVersion: csfabric/v1\nmetadata: {name: a}\nspec:\n"
            "  scope:\n    tags:\n      env: [dev]\n",
            7,
            "spec.scope.tags.env",
            "expected a string, got the list ['dev']",
        ),
    ],
)
def test_inline_mistakes(text: str, line: int, field: str, message: str) -> None:
    with pytest.raises(PolicyLoadError) as caught:
        parse_policy_text(text, "inline.yaml")
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == ("inline.yaml", line, field)
    assert message in problem.message


def test_multi_document_text_with_empty_documents() -> None:
    text = (
        "---\n"
        "apiVersion: csfabric/v1\nkind: TestPolicy\nmetadata: {name: a}\nspec: {}\n"
        "---\n"
        "# just a comment\n"
        "---\n"
        "apiVersion: csfabric/v1\nkind: TestPolicy\nmetadata: {name: b}\nspec: {retain: 1}\n"
    )
    loaded = parse_policy_text(text, "multi.yaml")
    assert [(p.document.key, p.line) for p in loaded] == [
        ("TestPolicy.a", 2),
        ("TestPolicy.b", 9),
    ]
    assert all(isinstance(p, LoadedPolicy) and p.source == "multi.yaml" for p in loaded)


def test_duplicates_within_one_file() -> None:
    text = "apiVersion: csfabric/v1\nkind: TestPolicy\nmetadata: {name: a}\nspec: {}\n"
    with pytest.raises(PolicyLoadError) as caught:
        parse_policy_text(text + "---\n" + text, "twice.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.field) == (6, "metadata.name")
    assert problem.message == "duplicate policy TestPolicy.a: already defined at twice.yaml:1"


def test_hidden_and_non_yaml_files_are_skipped_and_empty_dirs_load_nothing(tmp_path: Path) -> None:
    assert load_policies([tmp_path]) == []
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("not: [valid")
    (tmp_path / "notes.md").write_text("kind: nothing")
    assert load_policies([tmp_path]) == []


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kind: caf\xe9\n")
    [problem] = problems_of(path)
    assert problem[0] == "latin1.yaml"
    assert problem[1] is None
    assert problem[3].startswith("cannot read: ")


def test_yaml_aliases_and_merge_keys_are_fine() -> None:
    text = (
        "apiVersion: csfabric/v1\nkind: TestPolicy\nmetadata: {name: a}\n"
        "spec:\n  scope: &s {domain: ROOT/x}\n"
        "---\n"
        "apiVersion: csfabric/v1\nkind: TestPolicy\nmetadata: {name: b}\n"
        "spec:\n  scope: {<<: {domain: ROOT/y}, account: acme}\n"
    )
    loaded = parse_policy_text(text)
    assert loaded[1].document.spec.scope.domain == "ROOT/y"
    assert loaded[1].document.spec.scope.account == "acme"
