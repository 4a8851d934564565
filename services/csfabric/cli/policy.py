"""``csfabric policy …`` and the kill switch ``csfabric pause|resume --all``.

Each command connects once (failing fast with the URL it tried), does its work through
:class:`~csfabric.kernel.policy.PolicyStore`, and disconnects.  The NATS URL comes
from the usual settings, so next to a running ``csfabric dev`` (its ``dev.json``) no flag
is needed.  Changes are audited by the store with the operator
(:func:`~csfabric.kernel.current_operator`); a file that does not validate is
reported problem by problem and nothing at all is stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from csfabric.devstack import connect_once
from csfabric.kernel import (
    CsfabricError,
    FabricSettings,
    StreamLimits,
    current_operator,
    parse_clock,
    redact,
)
from csfabric.kernel.bus import Bus, ensure_streams
from csfabric.kernel.policy import (
    POLICY_SERVICE,
    Change,
    GlobalPause,
    PolicyDocument,
    PolicyLoadError,
    PolicyStore,
    StoredPolicy,
    document_yaml,
    load_policies,
)

T = TypeVar("T")

policy_app = typer.Typer(
    help="Apply, inspect, pause and resume policies (stored in NATS KV, audited).",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
Paths = Annotated[list[Path], typer.Argument(help="Policy YAML files or directories.")]
NameArg = Annotated[str, typer.Argument(help="KIND.NAME, or NAME when only one kind has it.")]
KindOpt = Annotated[str | None, typer.Option("--kind", help="Only this kind.")]
AllFlag = Annotated[bool, typer.Option("--all", help="Every action of every service.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"csfabric: {redact(message)}", err=True)
    return typer.Exit(code)


def _run(work: Callable[[PolicyStore], Awaitable[T]], *, writes: bool = False) -> T:
    """Run ``work`` against the store; a fabric error becomes one line on stderr, exit 1."""

    async def main() -> T:
        settings = FabricSettings()
        nc = await connect_once(settings.nats_url)
        bus = Bus(nc, service=POLICY_SERVICE, clock=parse_clock(settings.clock))
        try:
            if writes:  # history, audit and control streams must exist to take the records
                await bus.retry(lambda: ensure_streams(bus.js, StreamLimits()), what="streams")
            return await work(PolicyStore(bus))
        finally:
            await bus.close()

    try:
        return asyncio.run(main())
    except CsfabricError as exc:
        raise _fail(str(exc)) from None


def _load(paths: list[Path], as_json: bool) -> list[PolicyDocument]:
    try:
        return [loaded.document for loaded in load_policies(paths)]
    except PolicyLoadError as exc:
        if as_json:
            problems = [str(p) for p in exc.problems]
            typer.echo(json.dumps({"ok": False, "stored": 0, "problems": problems}, indent=2))
        else:
            for problem in exc.problems:
                typer.echo(str(problem), err=True)
            typer.echo(f"{len(exc.problems)} problem(s); nothing was stored", err=True)
        raise typer.Exit(1) from None


def _change_json(change: Change) -> dict[str, Any]:
    return {
        "kind": change.kind,
        "name": change.name,
        "version": change.version,
        "change": change.change,
        "diff": change.diff,
    }


def _print_changes(changes: list[Change], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(
            json.dumps({"ok": True, "changes": [_change_json(c) for c in changes]}, indent=2)
        )
        return
    table = Table(title=title)
    for column in ("kind", "name", "version", "change"):
        table.add_column(column)
    for c in changes:
        table.add_row(c.kind, c.name, str(c.version), c.change)
    Console().print(table)


async def _resolve(store: PolicyStore, name: str, kind: str | None) -> tuple[str, str]:
    """``KIND.NAME`` as given, or the one stored policy called NAME (names have no dots)."""
    if "." in name:
        given_kind, _, given_name = name.partition(".")
        return given_kind, given_name
    found = [p for p in await store.list() if p.name == name and kind in (None, p.kind)]
    if len(found) == 1:
        return found[0].kind, found[0].name
    if not found:
        raise CsfabricError(f"no stored policy is called {name!r} (see `csfabric policy list`)")
    keys = ", ".join(p.key for p in found)
    raise CsfabricError(f"{name!r} is ambiguous: {keys}; give KIND.NAME or --kind")


@policy_app.command("apply")
def apply(paths: Paths, as_json: JsonFlag = False) -> None:
    """Validate every document, then store all of them or none; warn about SnapshotPolicies
    that cannot hold their RPO or their retention (the apply goes ahead)."""
    from csfabric.cli.policy_warnings import snapshot_warnings

    docs = _load(paths, as_json)

    async def work(store: PolicyStore) -> tuple[list[Change], list[str]]:
        changes = await store.apply(docs, current_operator())
        return changes, await snapshot_warnings(store.bus, docs)

    changes, warnings = _run(work, writes=True)
    if as_json:
        body = {"ok": True, "changes": [_change_json(c) for c in changes], "warnings": warnings}
        typer.echo(json.dumps(body, indent=2))
        return
    _print_changes(changes, as_json, "policies applied")
    for warning in warnings:
        typer.echo(f"warning: {redact(warning)}", err=True)


@policy_app.command("diff")
def diff(paths: Paths, as_json: JsonFlag = False) -> None:
    """Show what `policy apply` would change; stores nothing."""
    docs = _load(paths, as_json)

    async def plan(store: PolicyStore) -> list[Change]:
        return [p.change for p in await store.plan(docs)]

    changes = _run(plan)
    if as_json:
        _print_changes(changes, True, "")
        return
    for c in changes:
        if c.change == "unchanged":
            typer.echo(f"{c.key}: unchanged (version {c.version})")
        else:
            typer.echo(f"{c.key}: {c.change} → version {c.version}\n{c.diff}")


def _stored_json(policy: StoredPolicy) -> dict[str, Any]:
    return policy.model_dump(mode="json", by_alias=True)


@policy_app.command("list")
def list_(kind: KindOpt = None, as_json: JsonFlag = False) -> None:
    """Every stored policy: version, who applied it and when, whether it is paused."""

    async def read(store: PolicyStore) -> tuple[list[StoredPolicy], GlobalPause | None]:
        return await store.list(), await store.global_pause()

    policies, pause = _run(read)
    policies = [p for p in policies if kind in (None, p.kind)]
    if as_json:
        killed = pause.model_dump(mode="json") if pause else None
        body = {"policies": [_stored_json(p) for p in policies], "globalPause": killed}
        typer.echo(json.dumps(body, indent=2))
        return
    table = Table(title="policies")
    for column in ("kind", "name", "version", "paused", "applied by", "applied at"):
        table.add_column(column)
    for p in policies:
        paused = "operator" if p.paused else "spec" if p.effective_paused else ""
        at = p.applied_at.isoformat(timespec="seconds")
        table.add_row(p.kind, p.name, str(p.version), paused, p.applied_by, at)
    console = Console()
    console.print(table)
    if pause is not None and pause.paused:
        console.print(f"[red]kill switch ON[/] since {pause.at.isoformat()} by {pause.by}")


@policy_app.command("show")
def show(
    name: NameArg,
    kind: KindOpt = None,
    version: Annotated[int | None, typer.Option(min=1, help="A past version.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print a policy as YAML (the current version, or --version N from the history)."""

    async def read(store: PolicyStore) -> StoredPolicy:
        k, n = await _resolve(store, name, kind)
        found = await store.get(k, n, version)
        if found is None:
            what = f"version {version} of " if version else ""
            raise CsfabricError(f"no {what}policy {k}.{n} is stored")
        return found

    policy = _run(read)
    if as_json:
        typer.echo(json.dumps(_stored_json(policy), indent=2))
        return
    state = ", paused by an operator" if policy.paused else ""
    by, at = policy.applied_by, policy.applied_at.isoformat()
    typer.echo(f"# {policy.key} version {policy.version}, applied by {by} at {at}{state}")
    typer.echo(document_yaml(policy.document), nl=False)


def _one(name: str, kind: str | None, act: str, as_json: bool) -> None:
    """delete / pause / resume of one policy."""
    operator = current_operator()

    async def work(store: PolicyStore) -> Change:
        k, n = await _resolve(store, name, kind)
        if act == "delete":
            return await store.delete(k, n, operator)
        return await store.set_paused(k, n, act == "pause", operator)

    change = _run(work, writes=True)
    _print_changes([change], as_json, f"policy {act}")


@policy_app.command("delete")
def delete(name: NameArg, kind: KindOpt = None, as_json: JsonFlag = False) -> None:
    """Remove a policy (its history stays readable with `show --version`)."""
    _one(name, kind, "delete", as_json)


@policy_app.command("pause")
def pause(name: NameArg, kind: KindOpt = None, as_json: JsonFlag = False) -> None:
    """Stop one policy's actions until `policy resume` (survives re-applies)."""
    _one(name, kind, "pause", as_json)


@policy_app.command("resume")
def resume(name: NameArg, kind: KindOpt = None, as_json: JsonFlag = False) -> None:
    """Lift an operator's pause (a document with `spec.paused: true` stays paused)."""
    _one(name, kind, "resume", as_json)


def _kill_switch(everything: bool, paused: bool, as_json: bool) -> None:
    verb = "pause" if paused else "resume"
    if not everything:
        raise _fail(
            f"`csfabric {verb}` needs --all (the kill switch);"
            f" use `csfabric policy {verb} NAME` for one policy",
            code=2,
        )
    operator = current_operator()

    async def work(store: PolicyStore) -> GlobalPause:
        return await (store.pause_all(operator) if paused else store.resume_all(operator))

    state = _run(work, writes=True)
    if as_json:
        typer.echo(json.dumps(state.model_dump(mode="json"), indent=2))
    elif paused:
        typer.echo(f"kill switch ON by {state.by}: `csfabric resume --all` lifts it")
    else:
        typer.echo(f"kill switch OFF: actions resume (by {state.by})")


def pause_command(everything: AllFlag = False, as_json: JsonFlag = False) -> None:
    """Kill switch: stop every action of every service within a second (`--all`)."""
    _kill_switch(everything, True, as_json)


def resume_command(everything: AllFlag = False, as_json: JsonFlag = False) -> None:
    """Lift the kill switch (`--all`)."""
    _kill_switch(everything, False, as_json)


__all__ = ["pause_command", "policy_app", "resume_command"]
