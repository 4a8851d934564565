"""The webhook's checks: method and size, CloudStack's signature, headers, evidence, answers."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["stored", "duplicate", "test", "dead-lettered"]

# The webhook's answer per pipeline outcome.  A dead-lettered body still gets 200: its bytes
# are in the DLQ, and CloudStack re-sending a body that cannot parse would not help.
WEBHOOK_STATUS: Mapping[Outcome, int] = {
    "stored": 200,
    "duplicate": 200,
    "test": 200,
    "dead-lettered": 200,
}

SIGNATURE_HEADER = "X-CS-Signature"
EVENT_ID_HEADER = "X-CS-Event-ID"


# Longest received value kept as evidence in a rejection record (a header may be 8 KB).
EVIDENCE_LIMIT = 200
# Longest X-CS-Event-ID kept (CloudStack sends a 36-character uuid).
EVENT_ID_LIMIT = 128
_HMAC_BYTES = 32  # SHA-256


@dataclass(frozen=True)
class Rejection:
    """Why a webhook request is refused: the HTTP status, a reason safe to log, and a short
    ``kind`` that rejections are counted by (``missing-signature``, ``bad-signature`` …)."""

    status: int
    reason: str
    kind: str = ""


def check_request(method: str, content_length: int | None, max_bytes: int) -> Rejection | None:
    """Refuse before reading the body: wrong method, or a declared size over the limit."""
    if method != "POST":
        return Rejection(405, f"method {method} not allowed")
    if content_length is not None and content_length > max_bytes:
        return Rejection(413, f"body of {content_length} bytes exceeds {max_bytes}")
    return None


def webhook_signature(secret: bytes, body: bytes) -> str:
    """CloudStack's ``X-CS-Signature``: base64(HMAC-SHA256(secret, body)), no prefix."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def check_signature(secret: bytes | None, body: bytes, signature: str | None) -> Rejection | None:
    """None when accepted; a 401 when a secret is configured and the signature is missing,
    malformed (not ASCII — aiohttp hands non-UTF-8 bytes on as surrogates —, not base64, not
    32 bytes) or wrong.  No secret means the receiver was started with ``allow_unsigned``.
    The comparison is constant-time; the reason never quotes the signature."""
    if secret is None:
        return None
    if not signature or not signature.strip():
        return Rejection(401, f"missing {SIGNATURE_HEADER}", "missing-signature")
    try:
        given = base64.b64decode(signature.strip().encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        given = b""
    if len(given) != _HMAC_BYTES:
        reason = f"{SIGNATURE_HEADER} is not a base64 HMAC-SHA256"
        return Rejection(401, reason, "malformed-signature")
    expected = hmac.new(secret, body, hashlib.sha256).digest()
    if not hmac.compare_digest(given, expected):
        return Rejection(401, f"{SIGNATURE_HEADER} does not match the body", "bad-signature")
    return None


def usable_header(name: str, value: str) -> bool:
    """Whether a received header value may travel on with the event.

    aiohttp decodes header bytes as UTF-8 with surrogate escapes, so a non-UTF-8 value
    arrives as a string no encoder takes; kept, it would fail the event's serialisation on
    every retry.  The headers are not covered by the signature (only the body is) and the
    event's id comes from the body, so such a value is dropped and the event kept.
    ``X-CS-Event-ID`` must also look like an id (CloudStack sends a uuid).
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    if name.lower() == EVENT_ID_HEADER.lower():
        text = value.strip()
        return 0 < len(text) <= EVENT_ID_LIMIT and text.isascii() and text.isprintable()
    return True


def evidence_text(value: str | None, limit: int = EVIDENCE_LIMIT) -> str:
    """A received value as evidence: printable in any encoding, cut to ``limit`` characters."""
    if not value:
        return ""
    text = value.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        return f"{text[:limit]}… ({len(value)} characters)"
    return text
