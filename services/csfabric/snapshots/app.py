"""``csfabric run snapshots``: (being built) starts nothing yet."""

from __future__ import annotations

from csfabric.kernel import get_logger
from csfabric.kernel.service import ServiceContext

log = get_logger(__name__)


async def setup(ctx: ServiceContext) -> None:
    log.info("snapshots: nothing to run yet")


__all__ = ["setup"]
