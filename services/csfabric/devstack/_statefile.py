"""``dev.json`` and the ready line: what ``csfabric dev`` tells everything else.

``dev.json`` is written privately and atomically, and a live one means a running
supervisor; the ready line shows endpoints only, never keys, with passwords masked.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from csfabric.devstack._nats import mask_url
from csfabric.kernel import ConfigError

READY_PREFIX = "csfabric dev ready: "
# What the ready line may show: endpoints only.  dev.json also holds keys.
READY_KEYS = (
    "nats_url",
    "state_dir",
    "clock",
    "metrics",
    "cloudstack_endpoint",
    "gateway_url",
    "webhook_url",
    "kafka_bootstrap",
    "rabbitmq_url",
    "powerdns_url",
)
# What --with and the simulator add to dev.json; the children get each as CSFABRIC_<KEY>.
EXTRA_KEYS = (
    "kafka_bootstrap",
    "rabbitmq_url",
    "powerdns_url",
    "powerdns_api_key",
    "cloudstack_endpoint",
    "cloudstack_key",
    "cloudstack_secret",
    "cloudstack_webhook_secret_file",
    "webhook_url",
)


def write_private_json(path: Path, content: dict[str, Any]) -> None:
    """Write ``content`` with mode 0600, atomically: a reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # Permissions before the content and before the name becomes visible.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(content, out, indent=2, sort_keys=True)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def refuse_second_instance(dev_file: Path) -> None:
    """Two supervisors on one state dir would share a JetStream store: refuse the second."""
    try:
        pid = int(json.loads(dev_file.read_text())["pid"])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return  # no dev.json, or its supervisor is gone: a leftover from a crash
    if pid != os.getpid() and b"csfabric" in cmdline:
        raise ConfigError(
            f"csfabric dev is already running with state dir {dev_file.parent} (pid {pid}); "
            "stop it or pass another --state-dir"
        )


def ready_line(content: dict[str, Any]) -> str:
    ready = {key: content.get(key) for key in READY_KEYS}
    for key in ("nats_url", "rabbitmq_url"):
        url = ready[key]
        ready[key] = mask_url(url) if isinstance(url, str) else url
    return READY_PREFIX + json.dumps(ready, sort_keys=True)


__all__ = [
    "EXTRA_KEYS",
    "READY_KEYS",
    "READY_PREFIX",
    "ready_line",
    "refuse_second_instance",
    "write_private_json",
]
