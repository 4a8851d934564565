"""Bytes → the flat string map CloudStack's Gson writes: one piece of :mod:`._parse`.

Every rejection is an :class:`EnvelopeError` whose reason names the defect (the reason is
all an operator sees on the dead-letter subject).
"""

from __future__ import annotations

import json
import re
from typing import Any

from csfabric.kernel import EnvelopeError, quote

# A JSON ``\ud800`` escape decodes to a lone surrogate: a Python (or Java) string may hold
# one, UTF-8 cannot, so the event could never be written to the bus.
_SURROGATE = re.compile("[\ud800-\udfff]")


def decode_body(raw: bytes, *, max_bytes: int) -> dict[str, str]:
    """Bytes → the flat string map CloudStack's Gson writes, or the reason it is not one."""
    if len(raw) > max_bytes:
        raise EnvelopeError(f"body is {len(raw)} bytes, over the {max_bytes}-byte limit")
    if not raw.strip():
        raise EnvelopeError("body is empty")
    try:
        text = raw.decode("utf-8-sig")  # some relays prepend a BOM; CloudStack never does
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        body: Any = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        raise EnvelopeError(f"body repeats the key {quote(exc.key)}") from None
    except (ValueError, RecursionError) as exc:
        raise EnvelopeError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise EnvelopeError(f"body must be a JSON object, got {type(body).__name__}")
    for key, value in body.items():
        if not isinstance(value, str):  # Gson maps of String: ids and sizes are strings too
            kind = "null" if value is None else type(value).__name__
            raise EnvelopeError(f"value of {quote(key)} must be a string, got {kind}")
        check_unicode(key, value)
    return body


def check_unicode(key: str, value: str) -> None:
    """Reject a lone surrogate (invalid Unicode) in a key or value: UTF-8 cannot carry it.

    Rejected rather than replaced: a replaced character would change the body CloudStack
    sent (and its identity), while the dead letter keeps the original bytes as they came.
    """
    for what, text in (("key", key), ("value", value)):
        if not text.isascii() and (bad := _SURROGATE.search(text)) is not None:
            name = ascii(key) if what == "value" else "a key"
            raise EnvelopeError(
                f"{what} of {name} holds a lone surrogate U+{ord(bad.group()):04X}"
                f" at index {bad.start()}: invalid Unicode"
            )


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A Java map cannot hold a key twice; silently keeping the last would hide tampering.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


__all__ = ["check_unicode", "decode_body"]
