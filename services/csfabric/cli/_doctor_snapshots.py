"""``csfabric doctor``'s check of the snapshots service: can it start and reach CloudStack?"""

from __future__ import annotations

from pydantic import ValidationError

from csfabric.cloudstack import CloudStackSettings
from csfabric.snapshots.settings import SnapshotsSettings

COMPONENT = "snapshots service"


def snapshots_check() -> tuple[str, str, str, str]:
    """(status, target, fix, detail): its settings parse and CloudStack keys are known."""
    try:
        settings = SnapshotsSettings()
        cloudstack = CloudStackSettings()
    except ValidationError as exc:
        problem = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return "missing", "-", "correct the CSFABRIC_SNAPSHOTS_* settings", problem
    if cloudstack.key is None or cloudstack.secret is None:
        fix = "set CSFABRIC_CLOUDSTACK_KEY and _SECRET (csfabric dev writes them to dev.json)"
        return "not configured", cloudstack.endpoint, fix, "no CloudStack keys: it cannot start"
    detail = f"copy mode {settings.copy_mode}, retention sweep every {settings.sweep_interval:g}s"
    return "ok", cloudstack.endpoint, "", detail


__all__ = ["COMPONENT", "snapshots_check"]
