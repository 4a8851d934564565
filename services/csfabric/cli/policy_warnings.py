"""What ``csfabric policy apply`` warns about a ``SnapshotPolicy`` (warnings never refuse).

* The worst-case RPO, ``every + jitter + p95 of the copy times observed so far`` (KV
  ``csfabric_dr``, written by the replication service), above ``rpo``: the policy cannot
  hold its RPO even when nothing fails.  With no copy observed yet it says so.
* A project in scope (one owning a volume the policy selects) whose snapshot limit
  (``listProjects`` → ``snapshotlimit``; unset means CloudStack's default of 20) cannot hold
  ``retain.count`` snapshots of each of its volumes: createSnapshot would fail with 535.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.dr import KIND, SnapshotPolicy, p95, worst_case_rpo
from csfabric.kernel import format_duration
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import PolicyDocument
from csfabric.replication.reader import Zones, volume_ref
from csfabric.replication.state import BUCKET, copy_times

# max.project.snapshots: what an unset project limit means (see the reference page).
DEFAULT_PROJECT_SNAPSHOTS = 20


def _d(value: timedelta) -> str:
    return format_duration(value)


def rpo_warning(name: str, spec: SnapshotPolicy, times: Sequence[timedelta]) -> str | None:
    worst = worst_case_rpo(spec, times)
    if not spec.copy_to:
        copy = "no copyTo: RPO measured in the primary zone"
    elif times:
        copy = f"p95 copy time {_d(p95(times))} over {len(times)} observed copies"
    else:
        copy = "no copy time observed yet (counted as 0s; it will only grow)"
    if worst <= spec.rpo:
        return None
    return (
        f"SnapshotPolicy {name}: worst-case RPO {_d(worst)} (every {_d(spec.every)}"
        f" + jitter {_d(spec.jitter)}; {copy}) exceeds rpo {_d(spec.rpo)}"
    )


def limit_value(raw: object) -> int | None:
    """``snapshotlimit`` as listProjects shows it: a number, ``Unlimited`` (None), or unset."""
    if raw is None or raw == "":
        return DEFAULT_PROJECT_SNAPSHOTS
    if str(raw).strip().lower() == "unlimited" or str(raw).strip() == "-1":
        return None
    return int(str(raw))


async def limit_warnings(client: CloudStackClient, name: str, spec: SnapshotPolicy) -> list[str]:
    zone = await Zones(client).get(spec.selector.zone)
    rows = await client.list("listVolumes", zoneid=zone.id, listall="true", projectid="-1")
    volumes = Counter(
        (r["projectid"], r.get("project", r["projectid"]))
        for r in rows
        if r.get("projectid") and spec.selects(volume_ref(r))
    )
    out = []
    for (project_id, project), count in sorted(volumes.items()):
        [row] = (await client.list("listProjects", id=project_id, listall="true")) or [{}]
        limit = limit_value(row.get("snapshotlimit"))
        need = count * spec.retain.count
        if limit is not None and limit < need:
            out.append(
                f"SnapshotPolicy {name}: project {project} allows {limit} snapshots but"
                f" retain.count {spec.retain.count} x {count} volume(s) needs {need}"
                " (raise it with updateResourceLimit resourcetype=3, or retain fewer)"
            )
    return out


async def snapshot_warnings(bus: Bus, docs: Sequence[PolicyDocument]) -> list[str]:
    policies = [
        (d.metadata.name, d.spec)
        for d in docs
        if d.kind == KIND and isinstance(d.spec, SnapshotPolicy)
    ]
    if not policies:
        return []
    kv = await bus.key_value(BUCKET)
    warnings = []
    for name, spec in policies:
        if (text := rpo_warning(name, spec, await copy_times(kv, name))) is not None:
            warnings.append(text)
    settings = CloudStackSettings()
    if settings.key is None or settings.secret is None:
        return [*warnings, "project snapshot limits not checked: no CloudStack key/secret"]
    try:
        async with CloudStackClient(settings, clock=bus.clock) as client:
            for name, spec in policies:
                warnings.extend(await limit_warnings(client, name, spec))
    except Exception as exc:  # a warning's check must not fail the apply
        warnings.append(f"project snapshot limits not checked: {type(exc).__name__}: {exc}")
    return warnings


__all__ = ["limit_value", "rpo_warning", "snapshot_warnings"]
