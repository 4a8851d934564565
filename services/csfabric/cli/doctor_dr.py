"""``csfabric doctor``'s snapshot and DR checks: policies stored, services alive, zones known.

* The snapshots service's settings parse and CloudStack keys are known (it cannot start
  without them).
* SnapshotPolicies in the store (none: nothing is snapshotted; optional).
* Heartbeats of ``snapshots`` and ``replication`` (``csfabric_status``): without them the
  policies are not acted on.
* Every zone a policy names (``selector.zone`` and ``copyTo``) in ``listZones``: a DR zone
  CloudStack does not know means no copy will ever be made (required once policies exist).
"""

from __future__ import annotations

from nats.js.errors import BucketNotFoundError, NoKeysError
from pydantic import ValidationError

from csfabric.cli.doctor import MISSING, NOT_CONFIGURED, OK, UNREACHABLE, Check, _reason
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.devstack import connect_once
from csfabric.dr import KIND, SnapshotPolicy
from csfabric.kernel import HEARTBEAT_BUCKET, FabricSettings, parse_clock
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import PolicyStore
from csfabric.snapshots.settings import SnapshotsSettings

SERVICES = ("snapshots", "replication")


def snapshots_check() -> Check:
    """Whether the snapshots service can start: its settings parse and CloudStack keys are known."""
    component = "snapshots service"
    try:
        settings = SnapshotsSettings()
        cloudstack = CloudStackSettings()
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return Check(component, "-", MISSING, "correct the CSFABRIC_SNAPSHOTS_* settings", problem)
    if cloudstack.key is None or cloudstack.secret is None:
        fix = "set CSFABRIC_CLOUDSTACK_KEY and _SECRET (csfabric dev writes them to dev.json)"
        detail = "no CloudStack keys: it cannot start"
        return Check(component, cloudstack.endpoint, NOT_CONFIGURED, fix, detail, required=False)
    detail = f"copy mode {settings.copy_mode}, retention sweep every {settings.sweep_interval:g}s"
    return Check(component, cloudstack.endpoint, OK, detail=detail)


async def _heartbeats(bus: Bus) -> dict[str, int]:
    try:
        kv = await bus.js.key_value(HEARTBEAT_BUCKET)
        keys = await kv.keys()
    except (BucketNotFoundError, NoKeysError):
        keys = []
    return {s: sum(1 for k in keys if k.startswith(f"{s}.")) for s in SERVICES}


async def _zones(policies: list[tuple[str, SnapshotPolicy]], clock: FabricSettings) -> Check:
    component = "DR zones in listZones"
    cs = CloudStackSettings()
    if cs.key is None or cs.secret is None:
        fix = "set CSFABRIC_CLOUDSTACK_ENDPOINT, _KEY, _SECRET"
        return Check(component, "-", NOT_CONFIGURED, fix, required=False)
    async with CloudStackClient(cs, clock=parse_clock(clock.clock)) as client:
        rows = await client.list("listZones")
    known = {str(r.get(f)) for r in rows for f in ("id", "name")}
    missing = sorted(
        f"{name}: {zone}" for name, spec in policies for zone in spec.zones if zone not in known
    )
    if missing:
        fix = "correct selector.zone / copyTo in the policy, or add the zone to CloudStack"
        return Check(component, cs.endpoint, MISSING, fix, "unknown: " + ", ".join(missing))
    named = sorted({z for _, spec in policies for z in spec.copy_to})
    return Check(component, cs.endpoint, OK, detail="DR zones: " + (", ".join(named) or "none"))


async def dr_checks(settings: FabricSettings) -> list[Check]:
    try:
        nc = await connect_once(settings.nats_url, 1.0)
    except Exception as exc:  # the NATS check already says how to fix it
        return [Check("snapshot policies", "-", UNREACHABLE, "see NATS above", _reason(exc), False)]
    bus = Bus(nc, service="doctor", clock=parse_clock(settings.clock))
    try:
        return await checks_on(bus, settings)
    finally:
        await bus.close()


async def checks_on(bus: Bus, settings: FabricSettings) -> list[Check]:
    """The checks, read through ``bus`` (tests pass an in-memory one)."""
    stored = await PolicyStore(bus).list()
    seen = await _heartbeats(bus)
    policies = [
        (p.name, spec)
        for p in stored
        if p.kind == KIND and isinstance(spec := p.spec(), SnapshotPolicy)
    ]
    checks = []
    if policies:
        names = ", ".join(n for n, _ in policies)
        checks.append(Check("snapshot policies", "csfabric_policies", OK, detail=names))
    else:
        fix = "csfabric policy apply <SnapshotPolicy.yaml> (see docs/policies.md)"
        checks.append(
            Check("snapshot policies", "csfabric_policies", NOT_CONFIGURED, fix, "", False)
        )
    for service, count in seen.items():
        if count:
            detail = f"{count} instance(s) heartbeating"
            checks.append(Check(f"{service} service", HEARTBEAT_BUCKET, OK, detail=detail))
        else:
            fix = f"start `csfabric dev`, or `csfabric run {service}`"
            status = MISSING if policies else NOT_CONFIGURED
            checks.append(Check(f"{service} service", HEARTBEAT_BUCKET, status, fix, "", False))
    if policies:
        try:
            checks.append(await _zones(policies, settings))
        except Exception as exc:
            fix = "check the CloudStack API check above"
            checks.append(Check("DR zones in listZones", "-", UNREACHABLE, fix, _reason(exc)))
    return checks


__all__ = ["checks_on", "dr_checks"]
