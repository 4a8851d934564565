"""JSON-lines logging with trace ids, and a redactor so that secrets never reach a log.

One line per record: ``time`` (ISO 8601 UTC), ``level``, ``logger``, ``service``,
``message``, ``trace_id``/``span_id`` inside a valid span, the caller's ``extra=`` fields,
and ``exc`` for exceptions.  The trace id is what joins a log line to its trace.

Redaction happens in a filter on the handler rather than in the formatter, because it
must see the message *after* ``%``-formatting: in ``log.info("apikey=%s", key)`` neither
the format string nor the argument alone looks like a secret.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

from opentelemetry import trace

MASK = "***"

_SENSITIVE = r"apikey|secretkey|signature|api_key|secret|password|token|authorization"
# A prefix such as ``cloudstack_`` or ``access_`` is still the same kind of key.
_KEY = rf"[\w.-]*?(?:{_SENSITIVE})"
# "apikey": "v" (JSON) and 'apikey': 'v' (the repr of a logged params dict)
_QUOTED = re.compile(
    rf"""(?P<k>(?P<q>["']){_KEY}(?P=q)\s*:\s*)(?P<vq>["'])(?:\\.|(?!(?P=vq)).)*(?P=vq)""",
    re.IGNORECASE,
)
# apikey=v in query strings and key=value text; the value ends where a URL or a
# sentence would end it.
_ASSIGNED = re.compile(rf"""(?P<k>\b{_KEY}\s*=\s*)[^&\s"',;)}}\]]+""", re.IGNORECASE)
# Authorization: Bearer v (an HTTP header written out)
_HEADER = re.compile(
    r"""(?P<k>\bauthorization\s*:\s*(?:(?:bearer|basic|token|hmac)\s+)?)[^\s,;"']+""",
    re.IGNORECASE,
)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (_QUOTED, rf"\g<k>\g<vq>{MASK}\g<vq>"),
    (_ASSIGNED, rf"\g<k>{MASK}"),
    (_HEADER, rf"\g<k>{MASK}"),
)
_SENSITIVE_KEY = re.compile(rf"^{_KEY}$", re.I)

_secrets_lock = threading.Lock()
_secrets: set[str] = set()
_secrets_re: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in logs and in :func:`redact` output.

    Its URL-encoded forms are registered too: signed CloudStack requests carry base64
    secrets and signatures whose ``+/=`` appear percent-encoded in logged URLs.
    """
    global _secrets_re
    if not value:  # an empty pattern would match between every character
        return
    with _secrets_lock:
        _secrets.update({value, quote(value, safe=""), quote_plus(value, safe="")})
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _secrets_re = re.compile("|".join(re.escape(secret) for secret in ordered))
        redact.cache_clear()


@functools.lru_cache(maxsize=4096)
def redact(text: str) -> str:
    """``text`` with registered secrets and ``key=value`` credentials replaced by ``***``.

    Cached: audit reasons and log templates repeat, and three case-insensitive regexes per
    record are a measurable share of a handler's time; :func:`register_secret` clears it.
    """
    secrets_re = _secrets_re
    if secrets_re is not None:
        text = secrets_re.sub(MASK, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {
            str(key): MASK if _SENSITIVE_KEY.match(str(key)) else _redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(item) for item in value]
    # The formatter would str() it anyway; doing it here lets the result be redacted.
    return redact(str(value))


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}


class Redactor(logging.Filter):
    """Rewrites a record in place so that no later formatter or handler sees a secret."""

    _exc_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad %-args: keep both parts visible, but masked
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), None
        for key, value in _extras(record).items():
            setattr(record, key, MASK if _SENSITIVE_KEY.match(key) else _redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exc_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


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
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            line["trace_id"] = format(span_context.trace_id, "032x")
            line["span_id"] = format(span_context.span_id, "016x")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        for key, value in _extras(record).items():
            line.setdefault(key, value)
        return json.dumps(line, default=str, ensure_ascii=False)


class _CsfabricHandler(logging.StreamHandler[TextIO]):
    """Marks the handler :func:`setup_logging` owns, so a second call replaces it."""


def setup_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Give the root logger one JSON-lines handler with the redactor; safe to call again.

    ``stream`` defaults to ``sys.stderr`` as it is at call time (not import time), so a
    replaced stderr (pytest's capture, a daemon's redirect) is honoured.  A repeated call
    replaces the previous csfabric handler (the last service name, level and stream win)
    and leaves handlers installed by others alone.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _CsfabricHandler)]:
        root.removeHandler(old)
    handler = _CsfabricHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(Redactor())
    root.addHandler(handler)
    root.setLevel(level.upper())


__all__ = ["MASK", "JsonFormatter", "Redactor", "redact", "register_secret", "setup_logging"]
