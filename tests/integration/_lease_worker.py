"""A replica competing for a lease, run as its own OS process by ``test_leases.py``.

Usage: ``CSFABRIC_CLOCK=<spec> python _lease_worker.py NATS_URL HOLDER LOGFILE``

It competes for lease ``test-lease`` with the shipped default TTL on the kernel clock named
by ``CSFABRIC_CLOCK`` (the tests scale or skew it).  While it holds the lease it acts every
0.05 s: ``await lease.fence()`` and, right after, one line ``act <holder> <token> <wall>``
appended to LOGFILE, which all workers of a test share (``O_APPEND``: one ``write`` per line,
so the file's order is the order the acts happened in).  When its work stops it appends
``stop <holder> <token-or-None> <wall>``.  ``<holder>.ready`` appears next to LOGFILE once it
is connected and competing.  It never exits by itself: the test kills it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from csfabric.kernel import LEASE_BUCKET as BUCKET
from csfabric.kernel import Lease, parse_clock
from csfabric.kernel.bus import Bus

TICK = 0.05


async def main(url: str, holder: str, logfile: Path) -> None:
    clock = parse_clock(os.environ.get("CSFABRIC_CLOCK", "real"))
    bus = await Bus.connect(url, service=f"lease-{holder}", create_streams=False)
    kv = await bus.key_value(BUCKET)
    fd = os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    lease = Lease(kv, "test-lease", holder=holder, clock=clock)

    def record(kind: str, token: int | None) -> None:
        os.write(fd, f"{kind} {holder} {token} {time.time():.6f}\n".encode())

    async def work() -> None:
        token = lease.token
        try:
            while True:
                token = await lease.fence()
                record("act", token)  # no await between the fence and the act
                await asyncio.sleep(TICK)
        finally:
            record("stop", token)

    # Tell the test this replica is connected and about to compete.
    logfile.with_name(f"{holder}.ready").touch()
    try:
        await lease.run(work)
    finally:
        await bus.close()


if __name__ == "__main__":
    url, holder, logfile = sys.argv[1:4]
    asyncio.run(main(url, holder, Path(logfile)))
