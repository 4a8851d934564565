"""Kafka bridge settings, record keys and what both directions share."""

from __future__ import annotations

from typing import Literal

from aiokafka.errors import (
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
)
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from csfabric.kernel._envelope import CloudEvent, subject_for
from csfabric.kernel._settings import CsfabricSettings, read_dev_file

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
STRUCTURED_CONTENT_TYPE = b"application/cloudevents+json; charset=UTF-8"
# What no retry can fix: the record is too large, or the topic is invalid or forbidden.
_KAFKA_PERMANENT = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
)
_TRACE_HEADERS = ("traceparent", "tracestate")


def _dev_bootstrap() -> str:
    # `csfabric dev --with kafka` publishes its broker under FabricSettings' field name.
    value = read_dev_file().get("kafka_bootstrap")
    return value if isinstance(value, str) and value else DEFAULT_BOOTSTRAP


class KafkaBridgeSettings(CsfabricSettings):
    """``CSFABRIC_KAFKA_*``; ``…_BOOTSTRAP`` is also FabricSettings' ``kafka_bootstrap``."""

    model_config = SettingsConfigDict(env_prefix="CSFABRIC_KAFKA_", extra="ignore")

    bootstrap: str = Field(default_factory=_dev_bootstrap, description="host:port[,host:port]")
    topic_in: str = Field("csfabric.lifecycle", description="topics bridged in, comma-separated")
    group_id: str = Field("csfabric-bridge", description="consumer group of the bridge in")
    topic_out: str = Field("csfabric.events", description="topic the bridge out writes")
    subject_out: str = Field("csfabric.lifecycle.>", description="NATS filter bridged out")
    stream_out: str = Field("CSFABRIC_EVENTS", description="the stream holding subject_out")
    durable_out: str = Field("csfabric-kafka-out", description="JetStream durable, bridge out")
    raw_out: bool = Field(False, description="send payloads as they are (audit export)")
    # High, so that a Kafka outage pauses the bridge out instead of dead-lettering its input.
    max_deliver_out: int = Field(100, ge=1, description="sends tried before dead-lettering")
    max_records: int = Field(500, ge=1, description="records per fetched batch, bridge in")
    # A new group starts at the end: replaying a whole topic would go far past JetStream's
    # duplicate window.  "earliest" is for a deliberate first import of a topic's history.
    offset_reset: Literal["latest", "earliest"] = Field(
        "latest", description="where a new consumer group of the bridge in starts"
    )
    max_attempts_in: int = Field(
        5, ge=1, description="handling attempts of a failing record before it is dead-lettered"
    )
    session_timeout_ms: int = Field(10_000, ge=1, description="consumer group session timeout")
    heartbeat_interval_ms: int = Field(3_000, ge=1, description="consumer group heartbeat")
    # Tansu 0.6 answers InitProducerId with an error; real Kafka takes it.
    idempotence: bool = Field(False, description="idempotent producer")

    def topics_in(self) -> list[str]:
        return [topic.strip() for topic in self.topic_in.split(",") if topic.strip()]


def record_key(event: CloudEvent) -> bytes:
    """The resource uuid (CloudEvent ``subject``) when there is one, else the NATS subject."""
    return (event.subject or subject_for(event)).encode()
