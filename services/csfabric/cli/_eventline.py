"""One message of the backbone as ``csfabric events tail`` shows it: type, time, trace, summary.

Whatever arrives is described, never refused: a CloudEvent (CloudStack action, usage,
alert and state events get a summary of their own, e.g. ``VM.CREATE Completed <uuid> by
admin``), an audit record, a dead letter, and anything else as its payload cut to one
line.  Every piece shown is redacted and cut (:func:`csfabric.kernel.clip`) and has its
control characters escaped, so a hostile event can neither leak a secret nor drive the
terminal; a payload that breaks a rule here is shown raw rather than crash the tail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csfabric.kernel import clip
from csfabric.kernel.bus import DeadLetter

__all__ = ["EventLine", "describe"]

SUMMARY_LIMIT = 200
RAW_LIMIT = 160
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


@dataclass(frozen=True)
class EventLine:
    subject: str  # the NATS subject
    type: str  # the CloudEvent type, or audit, dead-letter, message
    summary: str
    time: datetime | None = None
    trace_id: str | None = None
    stream: str | None = None
    seq: int | None = None
    event: Any = None  # the payload as JSON, when it is JSON
    raw: str | None = None  # else the payload, cut

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat() if self.time else None,
            "type": self.type,
            "subject": self.subject,
            "stream": self.stream,
            "seq": self.seq,
            "trace_id": self.trace_id,
            "summary": self.summary,
            "event": self.event,
            "raw": self.raw,
        }


def one_line(value: object, limit: int = SUMMARY_LIMIT) -> str:
    """``value`` as text on one line: redacted, cut, control characters escaped."""
    text = clip(str(value), limit, one_line=True)
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def describe(
    subject: str,
    payload: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    stream: str | None = None,
    seq: int | None = None,
    stored: datetime | None = None,
) -> EventLine:
    """The line for one message; never raises."""
    where = {"stream": stream, "seq": seq}
    try:
        line = _describe(subject, payload, headers or {}, stored)
    except Exception:  # a summary must never end the tail: show the payload as it is
        line = EventLine(subject, "message", _raw(payload), stored, raw=_raw(payload))
    return EventLine(**{**line.__dict__, **where})


def _describe(
    subject: str, payload: bytes, headers: Mapping[str, str], stored: datetime | None
) -> EventLine:
    if "Csfabric-Dlq-Service" in headers:
        return _dead_letter(subject, payload, headers, stored)
    body = _json(payload)
    if isinstance(body, dict) and body.get("specversion"):
        kind = one_line(body.get("type") or "cloudevent", 120)
        summary = _cloudevent_summary(kind, body.get("subject"), body.get("data"))
        when = _time(body.get("time")) or stored
        return EventLine(subject, kind, summary, when, _trace(body.get("traceparent")), event=body)
    if isinstance(body, dict) and subject.startswith("csfabric.audit."):
        return EventLine(
            subject, "audit", _audit_summary(body), _time(body.get("time")) or stored,
            _hex(body.get("trace_id")), event=body,
        )  # fmt: skip
    if body is not None:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return EventLine(subject, "message", one_line(text, RAW_LIMIT), stored, event=body)
    return EventLine(subject, "message", _raw(payload), stored, raw=_raw(payload))


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:  # not UTF-8 or not JSON
        return None


def _raw(payload: bytes) -> str:
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        text = repr(payload)
    return one_line(text, RAW_LIMIT) if text else "(empty)"


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _trace(traceparent: object) -> str | None:
    match = _TRACEPARENT.match(traceparent) if isinstance(traceparent, str) else None
    return match.group(1) if match else None


def _hex(value: object) -> str | None:
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value) else None


def _words(*parts: object) -> str:
    return " ".join(one_line(part, 80) for part in parts if part not in (None, ""))


def _cloudevent_summary(kind: str, ce_subject: object, data: object) -> str:
    if not isinstance(data, dict):
        return _words(ce_subject, one_line(json.dumps(data, ensure_ascii=False), RAW_LIMIT))
    family = kind.split(".")[1] if kind.startswith("cloudstack.") and "." in kind else ""
    if family == "action":
        native = data.get("native")
        named = native.get("username") if isinstance(native, dict) else None
        who = named or data.get("user") or data.get("account")
        target = data.get("entityuuid") or ce_subject
        return _words(data.get("event"), data.get("status"), target, "by" if who else "", who)
    if family == "usage":
        return _words(data.get("event"), data.get("resource"), data.get("id"), "account",
                      data.get("account"))  # fmt: skip
    if family == "alert":
        zone = data.get("dataCenterId") or ce_subject
        return _words(data.get("event"), "zone" if zone else "", zone) + _after(data.get("subject"))
    if family == "state":
        old, new = data.get("old-state"), data.get("new-state")
        return _words(data.get("resource"), data.get("id") or ce_subject, old, "→", new)
    fields = {k: v for k, v in data.items() if k != "native"}
    return _words(ce_subject, json.dumps(fields, ensure_ascii=False, separators=(",", ":")))


def _after(text: object) -> str:
    return f": {one_line(text, 120)}" if text else ""


def _audit_summary(body: dict[str, Any]) -> str:
    head = _words(body.get("service"), body.get("decision"), body.get("outcome"),
                  body.get("action"), body.get("policy"))  # fmt: skip
    return head + _after(body.get("reason"))


def _dead_letter(
    subject: str, payload: bytes, headers: Mapping[str, str], stored: datetime | None
) -> EventLine:
    letter = DeadLetter.from_message(payload, headers)
    original = _json(letter.original)
    trace = _trace(original.get("traceparent")) if isinstance(original, dict) else None
    summary = _words(letter.service, letter.error, "from", letter.subject) + _after(letter.reason)
    return EventLine(
        subject, "dead-letter", summary, letter.time or stored, trace,
        event=letter.model_dump(mode="json", exclude={"original"}), raw=_raw(letter.original),
    )  # fmt: skip
