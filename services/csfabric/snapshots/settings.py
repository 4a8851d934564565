"""The snapshots service's settings: ``CSFABRIC_SNAPSHOTS_<NAME>`` (documented in README.md).

Times are fabric seconds (the kernel clock), so a scaled clock shortens them all alike.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csfabric.kernel import CsfabricSettings

_PREFIX = "CSFABRIC_SNAPSHOTS_"


class SnapshotsSettings(CsfabricSettings):
    """Scheduler, retries, inventory and retention of the snapshots service."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", populate_by_name=True)

    lease_ttl: float = Field(15.0, gt=0, description="scheduler lease TTL (one holder acts)")
    tick: float = Field(30.0, gt=0, description="longest the scheduler sleeps between looks")
    resync_interval: float = Field(600.0, gt=0, description="full listVolumes resync period")
    sweep_interval: float = Field(300.0, gt=0, description="retention sweep period per policy")
    max_in_flight: int = Field(16, ge=1, description="snapshot attempts running at once")
    retry_backoff: float = Field(5.0, gt=0, description="first retry delay inside a window")
    retry_backoff_cap: float = Field(60.0, gt=0, description="longest retry delay")
    window_margin: float = Field(
        2.0, ge=0, description="no new attempt starts this close to the window's end"
    )
    copy_mode: Literal["zoneids", "copy"] = Field(
        "zoneids",
        description="zoneids: createSnapshot copies in its job; copy: a copySnapshot after it",
    )


__all__ = ["SnapshotsSettings"]
