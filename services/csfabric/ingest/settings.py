"""Ingest's settings: ``CSFABRIC_INGEST_<NAME>`` (documented in README.md).

Some fall back to a shared setting, so ``csfabric dev`` (which passes the shared ones to
every child) needs no ingest-specific configuration: the cloud name, the webhook secret
file the simulator signs with, and the brokers ``--with rabbitmq|kafka`` start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from csfabric.kernel import ConfigError, CsfabricSettings

_PREFIX = "CSFABRIC_INGEST_"


def _env(name: str, *fallbacks: str) -> AliasChoices:
    return AliasChoices(f"{_PREFIX}{name.upper()}", *fallbacks)


class IngestSettings(CsfabricSettings):
    """Feeds, webhook receiver and ``listEvents`` poller of the ingest service."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", populate_by_name=True)

    cloud_name: str = Field(
        "cloudstack",
        validation_alias=_env("cloud_name", "CSFABRIC_CLOUD_NAME"),
        description="CloudEvent source of ingested events",
    )
    amqp_url: str | None = Field(
        None,
        validation_alias=_env("amqp_url", "CSFABRIC_RABBITMQ_URL"),
        description="RabbitMQ URL of CloudStack's event bus; None = no AMQP feed",
    )
    amqp_exchange: str = "cloudstack-events"
    amqp_queue: str = "csfabric-ingest"
    # The four categories the fabric ingests; CloudStack also publishes AsyncJobEvent
    # messages on the exchange, which would only fill the DLQ.
    amqp_bindings: str = Field(
        "*.ActionEvent.#,*.UsageEvent.#,*.AlertEvent.#,*.ResourceStateEvent.#",
        description="comma-separated binding patterns",
    )
    kafka_bootstrap: str | None = Field(
        None,
        validation_alias=_env("kafka_bootstrap", "CSFABRIC_KAFKA_BOOTSTRAP"),
        description="Kafka bootstrap servers of CloudStack's Kafka plugin; None = no Kafka feed",
    )
    kafka_topic: str = "cloudstack"
    kafka_group: str = "csfabric-ingest"
    kafka_offset_reset: Literal["latest", "earliest"] = Field(
        "latest",
        description="where a new consumer group starts; the listEvents poller catches up",
    )
    kafka_max_attempts: int = Field(
        5, ge=1, description="attempts at a failing Kafka record before it is dead-lettered"
    )
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(18091, ge=0, le=65535, description="0 picks a free port")
    webhook_path: str = "/webhook"
    webhook_secret_file: Path | None = Field(
        None,
        validation_alias=_env("webhook_secret_file", "CSFABRIC_CLOUDSTACK_WEBHOOK_SECRET_FILE"),
        description="file holding the webhook's HMAC secret; None = refuse to start, unless"
        " webhook_allow_unsigned",
    )
    webhook_allow_unsigned: bool = Field(
        False,
        description="with no secret file, accept unsigned deliveries (warned at start, in"
        " doctor and status) instead of refusing to start",
    )
    webhook_max_bytes: int = Field(1 << 20, gt=0, description="largest webhook body accepted")
    webhook_timeout: float = Field(
        8.0, gt=0, description="wall seconds to store a delivery before answering 503"
    )
    webhook_retry_after: int = Field(
        30, ge=0, description="Retry-After seconds of a 503 (NATS away, stream full)"
    )
    webhook_header_timeout: float = Field(
        10.0, gt=0, description="wall seconds a connection may take to send a request head"
    )
    webhook_read_timeout: float = Field(
        5.0, gt=0, description="wall seconds to read a request body before answering 408"
    )
    webhook_reject_window: float = Field(
        60.0, gt=0, description="fabric seconds of one rejection count (one audit record each)"
    )
    webhook_reject_sources: int = Field(
        100, gt=0, description="distinct sources counted per window; the rest count as 'other'"
    )
    poll_interval: float = Field(60.0, ge=0, description="fabric seconds between polls; 0 = off")
    poll_horizon: float = Field(86400.0, gt=0, description="fabric seconds the poller looks back")
    poll_overlap: float = Field(5.0, ge=0, description="seconds each window re-reads")
    poll_settle: float = Field(
        30.0, ge=0, description="rows younger than this wait a poll: their webhook may be late"
    )
    lease_ttl: float = Field(15.0, gt=0, description="fabric seconds of the poller's lease")

    def amqp_binding_patterns(self) -> list[str]:
        return [p.strip() for p in self.amqp_bindings.split(",") if p.strip()]

    def webhook_secret(self) -> bytes | None:
        """The secret's bytes (surrounding whitespace dropped), or None when not configured."""
        if self.webhook_secret_file is None:
            return None
        secret = self.webhook_secret_file.read_bytes().strip()
        if not secret:
            # An empty file would silently turn signature checks off.
            raise ConfigError(f"webhook secret file {self.webhook_secret_file} is empty")
        return secret


__all__ = ["IngestSettings"]
