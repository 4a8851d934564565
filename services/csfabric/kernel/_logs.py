"""Log lines with trace ids, as JSON or as readable text, always through the redactor.

JSON (one object per line, for machines): ``time`` (ISO 8601 UTC), ``level``, ``logger``,
``service``, ``message``, ``trace_id``/``span_id`` inside a valid span, the caller's
``extra=`` fields, and ``exc`` for exceptions.  The trace id is what joins a log line to
its trace.  Text (for people at a terminal): local time, level, service, message, the
``extra=`` fields as ``key=value`` and the trace id, coloured on a terminal unless
``NO_COLOR`` is set.  Which one: the ``log_format`` argument (a CLI's ``--log-format``),
else ``$CSFABRIC_LOG_FORMAT``, else text when the log stream is a terminal and JSON
otherwise.  A supervisor hands its choice to its children in ``CSFABRIC_LOG_FORMAT``.

Redaction happens in a filter on the handler rather than in a formatter, because it must
see the message *after* ``%``-formatting (in ``log.info("apikey=%s", key)`` neither the
format string nor the argument alone looks like a secret), and because then both formats
print only what the filter left: the formatters never see a secret.  The filter also
bounds the record, so that one record cannot become a megabyte line:

- ``MAX_MESSAGE`` (8 KiB): the formatted message;
- ``MAX_FIELD`` (2 KiB): each string in ``extra=`` fields (keys too), at any depth;
- ``MAX_ITEMS`` (100) items per list or dict in ``extra=`` and ``MAX_DEPTH`` (6) levels,
  deeper values are logged as their (cut) ``str()``;
- ``MAX_EXC`` (16 KiB): exception text and stack info.

The redaction itself (linear on hostile text) is :mod:`csfabric.kernel._redact`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from csfabric.kernel._redact import (
    MASK,
    MAX_DEPTH,
    MAX_EXC,
    MAX_FIELD,
    MAX_ITEMS,
    MAX_MESSAGE,
    clip,
    is_sensitive_key,
    quote,
    redact,
    redact_value,
    register_secret,
)

__all__ = [
    "FORMAT_ENV",
    "LOG_FORMATS",
    "MASK",
    "MAX_DEPTH",
    "MAX_EXC",
    "MAX_FIELD",
    "MAX_ITEMS",
    "MAX_MESSAGE",
    "JsonFormatter",
    "Redactor",
    "TextFormatter",
    "clip",
    "quote",
    "redact",
    "register_secret",
    "resolve_log_format",
    "setup_logging",
    "wants_colour",
]

FORMAT_ENV = "CSFABRIC_LOG_FORMAT"
LOG_FORMATS = ("json", "text")
AUTO = "auto"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}


class Redactor(logging.Filter):
    """Rewrites a record in place so that no later formatter or handler sees a secret.

    It also bounds the record (see the module docstring), so a hostile value cannot make
    a megabyte log line.
    """

    _exc_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad %-args: keep both parts visible, but masked
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = clip(message, MAX_MESSAGE), None
        for key, value in _extras(record).items():
            setattr(record, key, MASK if is_sensitive_key(key) else redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exc_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = clip(record.exc_text, MAX_EXC)
        if record.stack_info:
            record.stack_info = clip(record.stack_info, MAX_EXC)
        return True


def _span_ids() -> tuple[str, str] | None:
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


class JsonFormatter(logging.Formatter):
    """One JSON object per line; core keys win over ``extra=`` fields of the same name."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "time": time.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "service": self.service,
            "message": record.getMessage(),
        }
        if ids := _span_ids():
            line["trace_id"], line["span_id"] = ids
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        for key, value in _extras(record).items():
            line.setdefault(key, value)
        return json.dumps(line, default=str, ensure_ascii=False)


# Control characters other than newline and tab, C1 included (U+009B starts an escape
# sequence on many terminals): received text must not move the cursor or recolour lines.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BARE = re.compile(r"[^\s\"'=\\]{1,200}")
_LEVELS = {
    "DEBUG": "2",  # dim
    "INFO": "32",  # green
    "WARNING": "33",  # yellow
    "ERROR": "31",  # red
    "CRITICAL": "1;31",  # bold red
}


def _visible(text: str) -> str:
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _value(value: Any) -> str:
    if isinstance(value, str) and _BARE.fullmatch(value):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``12:04:05.120 INFO  ingest   message  key=value trace=…``, for a person to read."""

    def __init__(self, service: str, colour: bool = False) -> None:
        super().__init__()
        self.service = service
        self.colour = colour

    def _paint(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and text else text

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        level = self._paint(_LEVELS.get(record.levelname, "0"), f"{record.levelname:<7}")
        fields = [f"{_visible(str(k))}={_visible(_value(v))}" for k, v in _extras(record).items()]
        if ids := _span_ids():
            fields.append(f"trace={ids[0]}")
        line = (
            f"{self._paint('2', time)} {level} {self._paint('36', f'{self.service:<10}')} "
            f"{_visible(record.getMessage())}"
        )
        if fields:
            line += "  " + self._paint("2", " ".join(fields))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, record.stack_info):
            if block:
                line += "\n" + self._paint("31", _visible(block))
        return line


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def wants_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    plain = os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb"
    return _is_terminal(stream) and not plain


def resolve_log_format(choice: str | None, stream: TextIO | None = None) -> str:
    """``"json"`` or ``"text"``: ``choice``, else ``$CSFABRIC_LOG_FORMAT``, else by ``stream``.

    ``auto`` (and an unknown value) means text on a terminal, JSON otherwise.
    """
    value = (choice or os.environ.get(FORMAT_ENV) or AUTO).strip().lower()
    if value in LOG_FORMATS:
        return value
    return "text" if _is_terminal(stream if stream is not None else sys.stderr) else "json"


class _CsfabricHandler(logging.StreamHandler[TextIO]):
    """Marks the handler :func:`setup_logging` owns, so a second call replaces it."""


def setup_logging(
    service: str,
    level: str = "INFO",
    stream: TextIO | None = None,
    log_format: str | None = None,
) -> str:
    """Give the root logger one handler with the redactor; returns the format chosen.

    ``stream`` defaults to ``sys.stderr`` as it is at call time (not import time), so a
    replaced stderr (pytest's capture, a daemon's redirect) is honoured.  ``log_format``
    is ``json``, ``text`` or ``auto`` (see the module docstring).  A repeated call
    replaces the previous csfabric handler (the last service name, level, stream and
    format win) and leaves handlers installed by others alone.
    """
    out = stream if stream is not None else sys.stderr
    chosen = resolve_log_format(log_format, out)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CsfabricHandler)]:
        root.removeHandler(old)
    handler = _CsfabricHandler(out)
    if chosen == "text":
        handler.setFormatter(TextFormatter(service, colour=wants_colour(out)))
    else:
        handler.setFormatter(JsonFormatter(service))
    handler.addFilter(Redactor())
    root.addHandler(handler)
    root.setLevel(level.upper())
    return chosen
