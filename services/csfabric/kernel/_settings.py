"""Shared settings: ``CSFABRIC_<NAME>``; a service's own are ``CSFABRIC_<SERVICE>_<NAME>``.

Precedence: explicit arguments (CLI flags) > environment > ``dev.json`` in the state
directory (written by ``csfabric dev``) > defaults.  The CloudStack connection falls back
to the usual ``CLOUDSTACK_ENDPOINT|KEY|SECRET``.  Secrets are ``SecretStr`` so that a
settings object printed or logged never shows them.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from pydantic import AliasChoices, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from csfabric.kernel._durations import Duration

DEV_FILE = "dev.json"
# In the state dir too: the simulator writes its API keys there at start, for `cs` and dev.
SIMULATOR_KEYS_FILE = "simulator-keys.json"


def default_state_dir() -> Path:
    """``$CSFABRIC_STATE_DIR``, else the XDG state dir (``~/.local/state/csfabric``)."""
    explicit = os.environ.get("CSFABRIC_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "csfabric"


def read_dev_file(state_dir: Path | None = None) -> dict[str, Any]:
    """The ``dev.json`` of a running ``csfabric dev``, or ``{}`` when there is none."""
    path = (state_dir or default_state_dir()) / DEV_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class _DevFileSource(PydanticBaseSettingsSource):
    """Reads the field values ``csfabric dev`` published in ``dev.json``.

    A settings class whose fields ``dev.json`` names with a prefix (``cloudstack_endpoint``
    for ``CloudStackSettings.endpoint``) says so in its ``dev_file_prefix``.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        prefix: str = getattr(settings_cls, "dev_file_prefix", "")
        data = read_dev_file()
        self._data = {
            name: data[prefix + name]
            for name in settings_cls.model_fields
            if data.get(prefix + name) is not None
        }

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class CsfabricSettings(BaseSettings):
    """Base for every settings class: adds the ``dev.json`` layer below the environment."""

    model_config = SettingsConfigDict(env_prefix="CSFABRIC_", extra="ignore", populate_by_name=True)
    dev_file_prefix: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _DevFileSource(settings_cls), file_secret_settings)


class StreamLimits(CsfabricSettings):
    """Retention of every stream, so that nothing grows without bound."""

    model_config = SettingsConfigDict(env_prefix="CSFABRIC_STREAM_", extra="ignore")

    max_age_seconds: float = Field(7 * 24 * 3600, gt=0, description="oldest message kept")
    max_bytes: int = Field(1 << 30, gt=0, description="bytes kept per stream")
    duplicate_window_seconds: float = Field(2 * 3600, gt=0, description="Nats-Msg-Id dedupe window")
    replicas: int = Field(1, ge=1, le=5, description="JetStream replicas per stream")


class FabricSettings(CsfabricSettings):
    """Settings every service and the CLI share (``CSFABRIC_<NAME>``)."""

    nats_url: str = Field("nats://127.0.0.1:4222", description="comma-separated for a cluster")
    state_dir: Path = Field(default_factory=default_state_dir)
    clock: str = Field("real", description="real | scaled:<epoch>:<factor> | stepped")
    otlp_endpoint: str | None = Field(None, description="OTLP/HTTP traces endpoint")
    log_level: str = "INFO"
    cloud_name: str = Field("cloudstack", description="CloudEvent source of ingested events")
    max_event_bytes: int = Field(1 << 20, gt=0, description="largest accepted CloudEvent")
    max_deliver: int = Field(5, ge=1, description="deliveries before dead-lettering")
    action_key_ttl: Duration = Field(timedelta(days=7), description="idempotency keys kept")
    kafka_bootstrap: str | None = None
    rabbitmq_url: str | None = None
    powerdns_url: str | None = None
    cloudstack_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("CSFABRIC_CLOUDSTACK_ENDPOINT", "CLOUDSTACK_ENDPOINT")
    )
    cloudstack_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CSFABRIC_CLOUDSTACK_KEY", "CLOUDSTACK_KEY")
    )
    cloudstack_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("CSFABRIC_CLOUDSTACK_SECRET", "CLOUDSTACK_SECRET")
    )

    def nats_servers(self) -> list[str]:
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]


__all__ = [
    "DEV_FILE",
    "SIMULATOR_KEYS_FILE",
    "CsfabricSettings",
    "FabricSettings",
    "StreamLimits",
    "default_state_dir",
    "read_dev_file",
]
