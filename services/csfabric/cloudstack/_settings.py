"""Settings of the CloudStack client: ``CSFABRIC_CLOUDSTACK_<NAME>``.

The connection (endpoint, key, secret) also falls back to the usual ``CLOUDSTACK_*``
variables that ``cs`` and CloudMonkey read, so one shell works for both, and to the
``cloudstack_*`` entries ``csfabric dev`` writes to ``dev.json``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from csfabric.kernel import CsfabricSettings

_PREFIX = "CSFABRIC_CLOUDSTACK_"


def _env(name: str) -> AliasChoices:
    # Code still passes endpoint=... (populate_by_name); a bare ENDPOINT variable must
    # not count, hence no plain-name alias.
    return AliasChoices(f"{_PREFIX}{name.upper()}", f"CLOUDSTACK_{name.upper()}")


class CloudStackSettings(CsfabricSettings):
    """How to reach CloudStack, and how hard to lean on it."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", populate_by_name=True)
    # dev.json names the connection cloudstack_endpoint|key|secret.
    dev_file_prefix: ClassVar[str] = "cloudstack_"

    endpoint: str = Field(
        "http://127.0.0.1:8080/client/api",
        validation_alias=_env("endpoint"),
        description="the API URL, ending in /client/api",
    )
    key: SecretStr | None = Field(None, validation_alias=_env("key"), description="API key")
    secret: SecretStr | None = Field(
        None, validation_alias=_env("secret"), description="secret key"
    )
    timeout: float = Field(10.0, gt=0, description="seconds (wall time) per HTTP request")
    # ActionLedger's call deadline (360 s by default) must cover a whole job: keep this
    # below it, with room for the submit and the last poll.
    job_timeout: float = Field(300.0, gt=0, description="fabric seconds to wait for a job")
    poll_interval: float = Field(1.0, gt=0, description="fabric seconds between job polls")
    max_retries: int = Field(5, ge=0, description="retries of a transient failure per call")
    retry_backoff: float = Field(0.5, ge=0, description="first retry delay, doubled each time")
    retry_backoff_cap: float = Field(30.0, ge=0, description="longest retry delay")
    rate_limit_per_second: float | None = Field(
        20.0, gt=0, description="requests/s per endpoint (token bucket); None = unlimited"
    )
    max_concurrency: int = Field(8, ge=1, description="requests in flight per endpoint")
    page_size: int = Field(500, ge=1, description="pagesize of list commands")
    signature_ttl: float = Field(600.0, gt=0, description="seconds a v3 signature is valid")


__all__ = ["CloudStackSettings"]
