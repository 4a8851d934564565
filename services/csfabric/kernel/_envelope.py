"""CloudEvents 1.0 in structured JSON mode, with W3C trace context extension attributes.

:func:`parse_event` is strict and specific: every defect gets its own reason (too large,
not UTF-8, not JSON, a missing or mistyped attribute, a bad extension name), which the bus
puts on the dead-letter message.  :meth:`CloudEvent.to_json` writes compact JSON whose
attributes come out in a stable order, so the same event always has the same bytes.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from csfabric.kernel._logs import clip, quote
from csfabric.kernel.errors import EnvelopeError

DEFAULT_MAX_BYTES = 1 << 20
_TYPE = r"^[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*$"
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class CloudEvent(BaseModel):
    """One CloudEvent.  Extension attributes (lowercase alphanumeric names) are kept."""

    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=False)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, description="unique within source; the Nats-Msg-Id")
    source: str = Field(min_length=1, description="URI-reference of the producer")
    # Dotted words, none empty: "a..b" or "a." would make a subject no stream stores.
    type: str = Field(min_length=1, pattern=_TYPE, description="dotted type")
    subject: str | None = Field(None, min_length=1)
    time: datetime | None = Field(None, description="RFC 3339 with a zone offset")
    datacontenttype: str | None = "application/json"
    dataschema: str | None = Field(None, min_length=1)
    data: Any = None
    traceparent: str | None = Field(None, pattern=_TRACEPARENT.pattern)
    tracestate: str | None = None

    @field_validator("time")
    @classmethod
    def _zone_required(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("time must carry a zone offset (RFC 3339)")
        if value is not None:
            try:
                # 0001-01-01T00:00:00+01:00 parses, but has no UTC instant: to_json could
                # never write it, so it is refused here, where the reason reaches the DLQ.
                value.astimezone(UTC)
            except (OverflowError, ValueError):
                raise ValueError(
                    "time is out of range: its UTC instant is outside years 1-9999"
                ) from None
        return value

    @model_validator(mode="after")
    def _extensions_are_valid(self) -> CloudEvent:
        if not self.__pydantic_extra__:
            return self
        for name, value in self.__pydantic_extra__.items():
            if not _EXTENSION_NAME.match(name):
                raise ValueError(
                    f"extension attribute {quote(name)} must be 1-20 lowercase letters or digits"
                )
            if not isinstance(value, str | int | bool):
                raise ValueError(
                    f"extension attribute {quote(name)} must be a string, integer or boolean"
                )
        return self

    @property
    def extensions(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def trace_id(self) -> str | None:
        return self.traceparent.split("-")[1] if self.traceparent else None

    def to_dict(self, trace: tuple[str, str | None] | None = None) -> dict[str, Any]:
        """The JSON object; ``trace`` (traceparent, tracestate) stands in for the event's."""
        body: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
        }
        traceparent, tracestate = trace or (self.traceparent, self.tracestate)
        for name, value in (
            ("subject", self.subject),
            ("datacontenttype", self.datacontenttype),
            ("dataschema", self.dataschema),
            ("traceparent", traceparent),
            ("tracestate", tracestate),
        ):
            if value is not None:
                body[name] = value
        if self.time is not None:
            body["time"] = self.time.astimezone(UTC).isoformat().replace("+00:00", "Z")
        body.update(sorted(self.extensions.items()))
        if self.data is not None:
            body["data"] = self.data
        return body

    def to_json(self, trace: tuple[str, str | None] | None = None) -> bytes:
        """Compact UTF-8 JSON; :class:`EnvelopeError` if the event cannot be written.

        ``trace`` writes the event as :meth:`with_trace` would have made it, without the copy.

        Validation already refuses what UTF-8 or UTC cannot hold; this also covers ``data``
        built in code (a non-JSON value), so a caller always gets the permanent error.
        """
        try:
            text = json.dumps(self.to_dict(trace), separators=(",", ":"), ensure_ascii=False)
            return text.encode()
        except (UnicodeEncodeError, OverflowError, TypeError, ValueError, RecursionError) as exc:
            why = clip(str(exc), 200, one_line=True)
            what = f"event {quote(self.id)}"
            raise EnvelopeError(f"{what} cannot be written as JSON: {why}") from None

    def with_trace(self, traceparent: str | None, tracestate: str | None = None) -> CloudEvent:
        return self.model_copy(update={"traceparent": traceparent, "tracestate": tracestate})


_SURROGATE = re.compile("[\ud800-\udfff]")
# UTF-8 bytes cannot hold a surrogate; only a JSON escape can make one.
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(data: bytes) -> None:
    """EnvelopeError when the JSON text decodes to a lone surrogate (invalid Unicode).

    A ``\\ud800`` escape parses to a string UTF-8 cannot carry, so ``to_json`` would fail on
    every publish of the event; refused here, where the reason reaches the dead letter.
    """
    try:
        body = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return  # not JSON: parse_event names that defect
    if (where := _lone_surrogate(body)) is not None:
        raise EnvelopeError(f"{where} holds a lone surrogate: invalid Unicode")


def _lone_surrogate(value: Any) -> str | None:
    """The path of the first string (key or value) holding a lone surrogate, else None.

    The path is built only for the string found (the way down is kept as links), so the
    walk is linear: building each key's path as it went made a long key above many small
    ones quadratic (1 MiB took 0.7 s).
    """
    found = _find_surrogate(value, None)
    if found is None:
        return None
    link, in_key = found
    parts: list[str] = []
    while link is not None:
        link, part = link
        parts.append(part)
    where = "".join(reversed(parts)).removeprefix(".")
    return f"a key in {where or 'event'}" if in_key else where or "event"


_Link = tuple[Any, str] | None  # (the parent's link, ".key" or "[index]")


def _find_surrogate(value: Any, link: _Link) -> tuple[_Link, bool] | None:
    """(link to the string, whether it is a key) of the first lone surrogate, else None."""
    if isinstance(value, str):
        if not value.isascii() and _SURROGATE.search(value):
            return link, False
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                return link, True
            if (found := _find_surrogate(item, (link, f".{key}"))) is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if (found := _find_surrogate(item, (link, f"[{index}]"))) is not None:
                return found
    return None


def parse_event(raw: bytes | str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> CloudEvent:
    """Parse one structured-mode CloudEvent or raise :class:`EnvelopeError` with the reason."""
    data = raw.encode("utf-8", "backslashreplace") if isinstance(raw, str) else raw
    if _ESCAPED_SURROGATE.search(data):  # rare: only then is the parsed text walked
        _refuse_lone_surrogates(data)
    if len(data) > max_bytes:
        raise EnvelopeError(f"event is {len(data)} bytes, over the {max_bytes}-byte limit")
    try:
        # The fast path for the usual, valid event; any failure is re-parsed below,
        # step by step, to name the defect precisely.
        event = CloudEvent.model_validate_json(data)
    except (ValidationError, RecursionError):
        pass
    else:
        if "specversion" in event.model_fields_set:  # the model defaults it; input must not
            return event
    if not data.strip():
        raise EnvelopeError("event is empty")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"event is not UTF-8 (byte {exc.start})") from None
    try:
        body = json.loads(text)
    except RecursionError:
        raise EnvelopeError("event is nested too deeply to be JSON we accept") from None
    except ValueError as exc:
        raise EnvelopeError(f"event is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise EnvelopeError(f"event must be a JSON object, got {type(body).__name__}")
    if "data_base64" in body:
        raise EnvelopeError("data_base64 is not supported; send JSON data")
    version = body.get("specversion")
    if version != "1.0":
        raise EnvelopeError(f"specversion must be '1.0', got {quote(version)}")
    try:
        return CloudEvent.model_validate(body)
    except ValidationError as exc:
        raise EnvelopeError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        # Locations can be keys of the received JSON: cut, like every quoted received value.
        where = clip(".".join(str(part) for part in error["loc"]) or "event", 200, one_line=True)
        message = error["msg"]
        if error["type"] == "missing":
            message = "required attribute is missing"
        problems.append(f"{where}: {message}")
    return clip("; ".join(problems[:20]), 2000, one_line=True)


def make_event(
    *,
    type: str,
    source: str,
    id: str,
    subject: str | None = None,
    data: Any = None,
    time: datetime | None = None,
    dataschema: str | None = None,
    **extensions: str | int | bool,
) -> CloudEvent:
    """Build an event; the same validation as parsing applies."""
    given = {"id": id, "source": source, "subject": subject, "data": data, **extensions}
    if (where := _lone_surrogate(given | {"dataschema": dataschema})) is not None:
        raise EnvelopeError(f"{where} holds a lone surrogate: invalid Unicode")
    try:
        return CloudEvent.model_validate(
            {
                "id": id,
                "source": source,
                "type": type,
                "subject": subject,
                "time": time,
                "data": data,
                "dataschema": dataschema,
                **extensions,
            }
        )
    except ValidationError as exc:
        raise EnvelopeError(_describe(exc)) from None


def subject_for(event: CloudEvent, prefix: str = "csfabric") -> str:
    """NATS subject of an input event (DESIGN contracts): ``csfabric.`` + family + type tokens.

    ``cloudstack.*`` types keep their family token; everything else is a lifecycle event.
    """
    if event.type.startswith("cloudstack."):
        return f"{prefix}.{event.type}"
    return f"{prefix}.lifecycle.{event.type}"


__all__ = [
    "DEFAULT_MAX_BYTES",
    "CloudEvent",
    "make_event",
    "parse_event",
    "subject_for",
]
