"""CloudStack request signatures (ApiServer.verifyRequest), v1 and v3.

All parameters except ``signature``, sorted by name (Java ``Collections.sort``: ordinal,
case-sensitive), values encoded like ``java.net.URLEncoder`` with ``+`` turned into ``%20``,
joined ``k=v&...``, the whole string lower-cased, HMAC-SHA1 with the secret, base64.
``signatureversion=3`` additionally requires an unexpired ``expires``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import quote

from csfabric.cloudstack.simulator._errors import auth_failed

# java.net.URLEncoder leaves only these unescaped (space becomes "+", then "%20").
_JAVA_SAFE = ".-*_"


def _java_encode(value: str) -> str:
    return quote(value, safe=_JAVA_SAFE).replace("~", "%7E")


def canonical(params: Mapping[str, str]) -> str:
    """The lower-cased string CloudStack signs."""
    parts = [
        f"{name}={_java_encode(params[name])}"
        for name in sorted(params)
        if name.lower() != "signature"
    ]
    return "&".join(parts).lower()


def signature(params: Mapping[str, str], secret: str) -> str:
    digest = hmac.new(secret.encode(), canonical(params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def parse_expires(value: str) -> datetime | None:
    """``yyyy-MM-dd'T'HH:mm:ssZ`` (CloudStack's format); ISO 8601 offsets also accepted."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+0000"
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _get(params: Mapping[str, str], name: str) -> str | None:
    for key, value in params.items():
        if key.lower() == name:
            return value
    return None


def verify_request(
    params: Mapping[str, str],
    lookup_secret: Callable[[str], str | None],
    now: datetime,
) -> str:
    """Check the signature; return the caller's apikey or raise the 401 ApiError.

    Every failure mode (missing key, unknown key, bad/expired ``expires``, wrong signature)
    gets the same 401 answer, as in CloudStack.
    """
    sig = _get(params, "signature")
    apikey = _get(params, "apikey")
    if sig is None or apikey is None:
        raise auth_failed()
    if _get(params, "signatureversion") == "3":
        raw = _get(params, "expires")
        expires = parse_expires(raw) if raw is not None else None
        if expires is None or expires < now:
            raise auth_failed()
    secret = lookup_secret(apikey)
    if secret is None:
        raise auth_failed()
    if not hmac.compare_digest(signature(params, secret), sig):
        raise auth_failed()
    return apikey
