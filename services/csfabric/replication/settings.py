"""Replication's settings: ``CSFABRIC_REPLICATION_<NAME>`` (documented in README.md).

Durations are fabric seconds (the kernel clock), so ``csfabric dev --time-scale 60`` and a
stepped clock in tests shrink them like everything else.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csfabric.kernel import CsfabricSettings

SERVICE = "replication"
_PREFIX = "CSFABRIC_REPLICATION_"


class ReplicationSettings(CsfabricSettings):
    """How often the DR zone is read, when a missing copy is made, how failures back off."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", populate_by_name=True)

    sweep_interval: float = Field(
        30.0, gt=0, description="fabric seconds between reads of the DR zones (lag resolution)"
    )
    copy_grace: float = Field(
        120.0,
        ge=0,
        description="a BackedUp snapshot missing in a DR zone this long gets copySnapshot"
        " (before that, createSnapshot zoneids may still be copying it)",
    )
    copy_horizon: float = Field(
        3600.0, gt=0, description="snapshots older than this are not copied any more"
    )
    retry_backoff: float = Field(60.0, gt=0, description="first wait after a failed copy")
    retry_backoff_cap: float = Field(600.0, gt=0, description="longest wait between copies")
    max_attempts: int = Field(6, ge=1, description="copies of one snapshot to one zone tried")
    lease_ttl: float = Field(15.0, gt=0, description="fabric seconds of the service's lease")
    evidence_chunk: int = Field(
        2000, ge=1, description="volumes per rpo-evidence record (a record must fit 1 MiB)"
    )
    lag_samples: int = Field(
        500, ge=1, description="copy-lag observations kept per policy (KV csfabric_dr)"
    )

    @property
    def grace(self) -> timedelta:
        return timedelta(seconds=self.copy_grace)

    @property
    def horizon(self) -> timedelta:
        return timedelta(seconds=self.copy_horizon)

    @property
    def backoff(self) -> timedelta:
        return timedelta(seconds=self.retry_backoff)

    @property
    def backoff_cap(self) -> timedelta:
        return timedelta(seconds=self.retry_backoff_cap)


__all__ = ["SERVICE", "ReplicationSettings"]
