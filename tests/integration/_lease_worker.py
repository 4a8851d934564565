"""A replica competing for a lease, run as its own OS process by ``test_leases.py``.

Usage: ``python _lease_worker.py NATS_URL HOLDER TTL OUTFILE``

While it holds lease ``test-lease`` it appends ``<holder> <wall time> <monotonic>`` to
OUTFILE every 0.1 s (flushed line by line, so a SIGKILL loses no written tick).  It never
exits by itself: the test kills it.  ``OUTFILE`` with suffix ``.ready`` appears once it is
connected and competing.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from csfabric.kernel.bus import Bus
from csfabric.kernel.leases import BUCKET, Lease

TICK = 0.1


async def main(url: str, holder: str, ttl: float, outfile: Path) -> None:
    bus = await Bus.connect(url, service=f"lease-{holder}", create_streams=False)
    kv = await bus.key_value(BUCKET)
    # Tell the test this replica is connected and about to compete.
    outfile.with_suffix(".ready").touch()

    async def work() -> None:
        with outfile.open("a", buffering=1) as out:
            while True:
                out.write(f"{holder} {time.time():.6f} {time.monotonic():.6f}\n")
                await asyncio.sleep(TICK)

    try:
        await Lease(kv, "test-lease", ttl=ttl, holder=holder).run(work)
    finally:
        await bus.close()


if __name__ == "__main__":
    url, holder, ttl, outfile = sys.argv[1:5]
    asyncio.run(main(url, holder, float(ttl), Path(outfile)))
