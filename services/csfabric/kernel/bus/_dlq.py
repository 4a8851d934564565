"""Dead letters: the original bytes as the payload, the reason and delivery count in headers.

Keeping the payload byte-for-byte means an operator can republish a fixed dead letter to
its original subject, and an auditor sees exactly what arrived.

The reason is bounded where the letter is made (at most ``MAX_REASON`` characters, one
line, secrets redacted): it often quotes what a producer sent, and a megabyte reason
would be a megabyte header, log line and alert.  Only the part kept is redacted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from csfabric.kernel._logs import clip

__all__ = ["HEADER_PREFIX", "MAX_REASON", "DeadLetter", "dlq_subject"]

HEADER_PREFIX = "Csfabric-Dlq-"
MAX_REASON = 2000
# Room for the "… (N more characters)" mark, so that a reason read back from a header is
# within the bound and comes back unchanged.
_KEEP = MAX_REASON - 40


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

    @field_validator("reason")
    @classmethod
    def _bounded(cls, reason: str) -> str:
        return _one_line(reason)

    def headers(self) -> dict[str, str]:
        values = {
            "Service": self.service,
            "Reason": self.reason,
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
    """``text`` on one line, secrets redacted, at most :data:`MAX_REASON` characters.

    A lone surrogate (a handler quoting bytes it decoded with ``surrogateescape``) is
    written as its escape: a NATS header is UTF-8, and a reason it cannot carry would make
    the dead letter unstorable, so the message would come back for ever.
    """
    clipped = clip(text, _KEEP if len(text) > MAX_REASON else MAX_REASON, one_line=True)
    return clipped.encode("utf-8", "backslashreplace").decode()


def dlq_subject(service: str) -> str:
    return f"csfabric.dlq.{service}"
