"""The demo policies ``csfabric dev`` applies at start, so a first run already acts.

They live in ``policies/demo/`` of the repository; every service's issue adds its own.
They go through the same validation and store as ``csfabric policy apply``, so each apply
is versioned and audited, and applying unchanged files again changes nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from csfabric.devstack._nats import connect_once
from csfabric.kernel import Clock, CsfabricError, current_operator
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import PolicyDocument, PolicyLoadError, PolicyStore, load_policies

log = logging.getLogger("csfabric.dev")  # the command's name, as in its log lines

# Next to services/ in a source checkout; an installed wheel has none, and runs without.
DEMO_POLICIES = Path(__file__).resolve().parents[3] / "policies" / "demo"
_SUFFIXES = (".yaml", ".yml")


def demo_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(
        path
        for path in directory.rglob("*")
        if path.suffix in _SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


async def load_demo_policies(bus: Bus, directory: Path, operator: str) -> list[str]:
    """Validate every file under ``directory`` and apply the valid ones; returns their keys.

    Unlike ``csfabric policy apply`` (all or nothing), a file with a problem is skipped
    with a warning naming each problem (file, line, field): until every service is
    installed, some demo kinds are unknown, and the others should still be applied.
    """
    files = demo_files(directory)
    if not files:
        log.info("no demo policies", extra={"directory": str(directory)})
        return []
    documents: dict[str, PolicyDocument] = {}
    for path in files:
        try:
            loaded = load_policies([path])
        except PolicyLoadError as exc:
            log.warning("demo policy file %s skipped:\n%s", path, exc)
            continue
        for policy in loaded:
            if policy.document.key in documents:
                log.warning("demo policy %s defined twice; %s skipped", policy.document.key, path)
            else:
                documents[policy.document.key] = policy.document
    if not documents:
        return []
    changes = await PolicyStore(bus).apply(list(documents.values()), operator)
    applied = {f"{change.kind}.{change.name}": change.change for change in changes}
    log.info("demo policies applied", extra={"policies": applied})
    return list(applied)


async def apply_demo_policies(nats_url: str, directory: Path, clock: Clock) -> list[str]:
    """:func:`load_demo_policies` as ``csfabric dev`` runs it: a failure is only logged.

    Demo policies make a first run visible; a store that refuses them (another operator
    applying at the same moment, say) must not stop the stack.
    """
    nc = await connect_once(nats_url)
    try:
        bus = Bus(nc, service="dev", clock=clock)
        return await load_demo_policies(bus, directory, current_operator())
    except CsfabricError as exc:
        log.warning("demo policies not applied: %s", exc)
        return []
    finally:
        await nc.close()


__all__ = ["DEMO_POLICIES", "apply_demo_policies", "demo_files", "load_demo_policies"]
