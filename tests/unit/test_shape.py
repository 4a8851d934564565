"""The shape of the tree, checked by the project's own tests (STYLE 5, 11, 13; DESIGN "Package
layout"): small modules, every private module behind a door that import-linter guards,
every door with its docstring and ``__all__``, and no path that points outside the repo.

import-linter itself (``lint-imports``) checks the layers, doors and independence
contracts; these tests check what it cannot: that the contracts cover every module.
"""

from __future__ import annotations

import ast
import subprocess
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "services"
PACKAGE = SERVICES / "csfabric"
MAX_LINES = 300  # STYLE: one idea a file; over ~300 lines is a sign to split
# Spelled in pieces so this file does not cite them itself.
FOREIGN_PATHS = ("/" + "work/", "../" + "shared")


def _modules() -> dict[str, Path]:
    """Dotted name → file, for every module of the package (``__init__`` as its package)."""
    out: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SERVICES).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _matches(pattern: str, module: str) -> bool:
    """import-linter's module expressions: ``*`` one component, ``**`` any number."""
    want, have = pattern.split("."), module.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(have)
        if want[i] == "**":
            return any(match(i + 1, k) for k in range(j + 1, len(have) + 1))
        return j < len(have) and want[i] in ("*", have[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _covered_by(module: str, pattern: str) -> bool:
    """A protected module covers its descendants too (import-linter's ``as_packages``)."""
    parts = module.split(".")
    return any(_matches(pattern, ".".join(parts[:n])) for n in range(2, len(parts) + 1))


def _is_internal(module: str) -> bool:
    """A ``_private`` module (or one inside a private package), or an area's ``errors``."""
    parts = module.split(".")
    private = any(p.startswith("_") and not p.startswith("__") for p in parts)
    return private or parts[-1] == "errors"


def test_no_module_is_over_300_lines() -> None:
    sizes = {
        str(path.relative_to(REPO)): len(path.read_text().splitlines())
        for path in sorted(SERVICES.rglob("*.py"))
    }
    offenders = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert sizes, "no modules found under services/"
    assert not offenders, f"modules over {MAX_LINES} lines (split by role): {offenders}"


def test_every_private_module_is_behind_a_protected_door() -> None:
    protected = [c for c in _contracts() if c.get("type") == "protected"]
    internal = sorted(m for m in _modules() if _is_internal(m))
    assert protected
    assert internal
    uncovered: list[str] = []
    open_doors: list[str] = []
    for module in internal:
        guards = [
            c for c in protected if any(_covered_by(module, str(p)) for p in c["protected_modules"])
        ]
        if not guards:
            uncovered.append(module)
            continue
        # The importers a door lets in are the module's own ancestors: its door and the
        # modules behind it, never a sibling package.
        for contract in guards:
            for importer in contract.get("allowed_importers", []):
                if not module.startswith(f"{importer}."):
                    open_doors.append(f"{module} <- {importer} ({contract['name']})")
    assert not uncovered, f"private modules no protected contract guards: {uncovered}"
    assert not open_doors, f"doors that let in more than the module's own package: {open_doors}"


def test_protected_contracts_name_only_modules_that_exist() -> None:
    modules = set(_modules())
    stale = [
        str(pattern)
        for contract in _contracts()
        if contract.get("type") == "protected"
        for pattern in contract["protected_modules"]
        if not any(_matches(str(pattern), m) for m in modules)
    ]
    assert not stale, f"protected contracts name modules that do not exist: {stale}"


def test_every_door_has_a_docstring_and_all_right_after_its_imports() -> None:
    problems: list[str] = []
    doors = sorted(PACKAGE.rglob("__init__.py"))
    assert doors
    for door in doors:
        name = str(door.relative_to(REPO))
        tree = ast.parse(door.read_text())
        doc = ast.get_docstring(tree)
        if not doc or "TODO" in doc:
            problems.append(f"{name}: no docstring saying what the room is")
        body = tree.body[1:] if doc else tree.body
        rest = [n for n in body if not isinstance(n, ast.Import | ast.ImportFrom)]
        first = rest[0] if rest else None
        targets: list[ast.expr] = []
        if isinstance(first, ast.Assign):
            targets = first.targets
        elif isinstance(first, ast.AnnAssign):
            targets = [first.target]
        if not any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            problems.append(f"{name}: __all__ is not the first statement after the imports")
    assert not problems, "\n".join(problems)


def _repo_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk it
        skip = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
        return [
            p
            for p in REPO.rglob("*")
            if p.is_file() and not skip.intersection(p.relative_to(REPO).parts)
        ]
    return [REPO / name for name in listed.split("\0") if name and (REPO / name).is_file()]


def test_no_file_cites_a_path_outside_the_repository() -> None:
    files = _repo_files()
    assert len(files) > 50, "the repository's files were not found"
    citing: list[str] = []
    for path in files:
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary
        for number, line in enumerate(text.splitlines(), 1):
            if any(marker in line for marker in FOREIGN_PATHS):
                citing.append(f"{path.relative_to(REPO)}:{number}")
    assert not citing, f"files citing a path outside the repository: {citing}"


def test_the_shape_checks_can_fail() -> None:
    """The helpers above really tell a covered module from an uncovered one."""
    assert _matches("csfabric.kernel.bus.*", "csfabric.kernel.bus._consumer")
    assert not _matches("csfabric.kernel.bus.*", "csfabric.kernel.bus")
    simulator = "csfabric.cloudstack.simulator"
    assert _covered_by(f"{simulator}.commands._vms", f"{simulator}.*")
    assert not _covered_by("csfabric.kernel._leases", "csfabric.kernel.bus.*")
    assert _matches("csfabric.**._x", "csfabric.a.b._x")
    assert _is_internal("csfabric.kernel._leases")
    assert _is_internal("csfabric.cloudstack.errors")
    assert not _is_internal("csfabric.ingest.handlers")


# What pure logic must not take from the kernel's door: the clock (logic is handed `now`)
# and tracing.  import-linter cannot see this: the door re-exports them, and logic may
# import the door for errors and the envelope, so the "forbidden" contract on
# csfabric.kernel._clock passes whatever logic imports from csfabric.kernel.
LOGIC_FORBIDDEN_ORIGINS = ("csfabric.kernel._clock", "csfabric.kernel._tracing")


def _door_names_from(tree: ast.AST, door: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == door:
            names.update(alias.name for alias in node.names)
    return names


def _forbidden_to_logic(source: str) -> set[str]:
    import csfabric.kernel as kernel

    banned = {
        name
        for name in kernel.__all__
        if getattr(getattr(kernel, name), "__module__", "") in LOGIC_FORBIDDEN_ORIGINS
    }
    return _door_names_from(ast.parse(source), "csfabric.kernel") & banned


def test_pure_logic_takes_no_clock_or_tracing_through_the_kernel_door() -> None:
    assert _forbidden_to_logic("from csfabric.kernel import EnvelopeError, RealClock") == {
        "RealClock"
    }
    assert _forbidden_to_logic("from csfabric.kernel import get_tracer") == {"get_tracer"}
    logic = {
        name: path
        for name, path in _modules().items()
        if any(_matches(pattern, name) for pattern in ("csfabric.*.logic", "csfabric.*.logic.*"))
    }
    assert "csfabric.ingest.logic._dedupe" in logic
    found = {
        name: used
        for name, path in logic.items()
        if (used := _forbidden_to_logic(path.read_text()))
    }
    assert not found, f"pure logic reaching the clock or tracing through the kernel door: {found}"


# Constants named twice on purpose (or in files other work has open): the reason stands
# beside each.  Any other name assigned the same value in two modules is one fact written
# twice, which drifts.
TWICE_ON_PURPOSE = {
    # status reads what the policy store wrote without importing it (cli/status/_collect).
    "POLICY_BUCKET",
    "GLOBAL_PAUSE_KEY",
    # the webhook's header, in the parser and in ingest's pure logic (which imports no
    # client); one of them could import the other's door.
    "EVENT_ID_HEADER",
}


def _constants(source: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for node in ast.parse(source).body:
        target = (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        )
        if (
            isinstance(target, ast.Name)
            and target.id.lstrip("_").isupper()
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str | int | float)
        ):
            out[target.id] = node.value.value
    return out


def test_a_named_constant_is_written_in_one_module() -> None:
    assert _constants('KEYS_FILE = "k.json"\nx = 1\nN = f(1)') == {"KEYS_FILE": "k.json"}
    where: dict[tuple[str, object], list[str]] = {}
    for name, path in _modules().items():
        for constant, value in _constants(path.read_text()).items():
            where.setdefault((constant, value), []).append(name)
    twice = {key: names for key, names in where.items() if len(names) > 1}
    unexplained = {key: names for key, names in twice.items() if key[0] not in TWICE_ON_PURPOSE}
    assert not unexplained, f"one constant written in several modules: {unexplained}"
