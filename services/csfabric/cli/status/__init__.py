"""``csfabric status``: services seen (and their warnings), lease holders, consumer lag, stream
fill, DLQ depth, paused policies.

Everything is read from NATS, so the answer is the same from any machine that reaches it;
the URL comes from the usual settings, which include a running ``csfabric dev``'s
``dev.json``.  It only reads: it must not create streams or buckets, nor know any service
beyond the names it finds on the bus.  This module is the door: ``_collect`` gathers the
:class:`StatusReport`, ``_render`` draws it, ``_run`` is the command.
"""

from csfabric.cli.status._collect import (
    ConsumerLag,
    DlqDepth,
    GlobalPause,
    LeaseHolder,
    PausedPolicy,
    ServiceSeen,
    StatusReport,
    StreamFill,
    collect_status,
)
from csfabric.cli.status._run import run_status

__all__ = [
    "ConsumerLag",
    "DlqDepth",
    "GlobalPause",
    "LeaseHolder",
    "PausedPolicy",
    "ServiceSeen",
    "StatusReport",
    "StreamFill",
    "collect_status",
    "run_status",
]
