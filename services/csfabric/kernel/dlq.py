"""Dead letters: the original bytes as the payload, the reason and delivery count in headers.

Keeping the payload byte-for-byte means an operator can republish a fixed dead letter to
its original subject, and an auditor sees exactly what arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, Field

from .logs import redact

HEADER_PREFIX = "Csfabric-Dlq-"
_MAX_REASON = 2000


class DeadLetter(BaseModel):
    """What ``csfabric.dlq.<service>`` carries, read back from a message."""

    service: str
    reason: str = Field(description="why the message could not be handled (secrets redacted)")
    error: str = Field(description="error class name")
    subject: str = Field(description="subject the message was consumed from")
    deliveries: int = Field(ge=0, description="how many times it was delivered")
    stream: str | None = None
    stream_seq: int | None = None
    time: datetime
    original: bytes = Field(description="the message payload, unchanged")

    def headers(self) -> dict[str, str]:
        values = {
            "Service": self.service,
            "Reason": _one_line(self.reason),
            "Error": self.error,
            "Subject": self.subject,
            "Deliveries": str(self.deliveries),
            "Time": self.time.isoformat(),
        }
        if self.stream is not None:
            values["Stream"] = self.stream
        if self.stream_seq is not None:
            values["Stream-Seq"] = str(self.stream_seq)
        return {HEADER_PREFIX + key: value for key, value in values.items()}

    @classmethod
    def from_message(cls, payload: bytes, headers: Mapping[str, str]) -> DeadLetter:
        get = {
            k[len(HEADER_PREFIX) :]: v for k, v in headers.items() if k.startswith(HEADER_PREFIX)
        }
        seq = get.get("Stream-Seq")
        return cls(
            service=get["Service"],
            reason=get["Reason"],
            error=get["Error"],
            subject=get["Subject"],
            deliveries=int(get["Deliveries"]),
            stream=get.get("Stream"),
            stream_seq=int(seq) if seq else None,
            time=datetime.fromisoformat(get["Time"]),
            original=payload,
        )


def _one_line(text: str) -> str:
    clean = " ".join(redact(text).split())
    return clean if len(clean) <= _MAX_REASON else clean[: _MAX_REASON - 1] + "…"


def dlq_subject(service: str) -> str:
    return f"csfabric.dlq.{service}"


__all__ = ["HEADER_PREFIX", "DeadLetter", "dlq_subject"]
