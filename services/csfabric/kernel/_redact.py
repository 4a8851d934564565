"""The redactor: secrets never reach a log, an error message or a dead-letter reason.

Received text is hostile: a webhook body, a header or a dead-letter reason can be a
megabyte written to make a regex backtrack.  So :func:`redact` is linear in its input:
every pattern starts with a literal sensitive word (found by a fast literal search, not
tried at every position) and every repetition after it is possessive, so no character is
looked at more than a bounded number of times; registered secrets are plain substring
replacements.  And nothing keeps what it redacted (no cache holding megabyte strings).

Text is cut *before* it is redacted (redacting a megabyte only to throw most of it away
is waste), at a point where no registered secret is split, so no fragment of a secret
survives the cut; a cut value ends with ``… (N more characters)``.  For quoting a
received value in an error message or a dead-letter reason, use :func:`quote` (a one-line
``repr``, cut to 200 characters by default) or :func:`clip` (plain text).
:func:`redact_value` does the same to structured ``extra=`` fields (bounded in size and
depth, credentials masked by key name); the log handler's filter in
:mod:`csfabric.kernel._logs` applies it to every record, whatever format writes it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from itertools import accumulate, chain, islice
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import quote_plus

__all__ = [
    "MASK",
    "MAX_DEPTH",
    "MAX_EXC",
    "MAX_FIELD",
    "MAX_ITEMS",
    "MAX_MESSAGE",
    "clip",
    "is_sensitive_key",
    "quote",
    "redact",
    "redact_value",
    "register_secret",
]

MASK = "***"
MAX_MESSAGE = 8 * 1024
MAX_FIELD = 2 * 1024
MAX_EXC = 16 * 1024
MAX_ITEMS = 100
MAX_DEPTH = 6

# The patterns run on a lower-cased copy of the text (same length, so positions carry
# over to the original); a case-insensitive regex is several times slower per character.
# Each starts with a literal word, so the regex engine jumps between occurrences of it
# instead of trying every position.
#
# After the word, in one match:
#   word=v (query strings, key=value text): the value ends where a URL or a sentence
#   would end it; word="v" as below;
#   word": "v" / word': 'v' (JSON, the repr of a logged params dict): the value runs to
#   its closing quote, or to the end of the line if it has none (a cut repr must not
#   leave the start of a secret visible).
# A prefix such as ``cloudstack_`` or ``access_`` in front of the word is the same kind
# of key, and needs no pattern of its own: the match starts at the word.
_VALUE = r"""[^&\s"',;)}\]]++"""
# After the opening quote, up to the closing one (escapes skipped) or the end of the line.
_BODY = r"""(?<=")(?:[^"\\\n]++|\\.?)*+|(?<=')(?:[^'\\\n]++|\\.?)*+"""
_WORDS = ("api_?key", "secret(?:key)?", "signature", "password", "token", "authorization")
_SCHEMES = "(?:bearer|basic|token|hmac)"


def _cased(words: str) -> str:
    """``words`` with each letter a class of its cases, for matching the original text.

    The two non-ASCII letters are those whose lower case is an ASCII letter, so that this
    matches exactly where ``words`` matches the lower-cased copy.
    """
    extra = {"i": "\u0130", "k": "\u212a"}
    return "".join(f"[{c}{c.upper()}{extra.get(c, '')}]" if c.isalpha() else c for c in words)


def _keyed(word: str) -> str:
    # Groups: the key, kept, and the value, masked; re.split interleaves them with the rest.
    return rf"""({word}(?:\s*+=\s*+["']?|["']\s*+:\s*+["']))({_BODY}|{_VALUE})"""


def _header(word: str, schemes: str) -> str:
    # Authorization: Bearer v (an HTTP header written out).
    return rf"""({word}\s*+:\s*+(?:{schemes}\s++)?)([^\s,;"']++)"""


# Each pass: the literal its matches start with, the pattern on the lower-cased copy, and
# the same pattern on the original text.
_PASSES = tuple(
    (re.sub("[^a-z].*", "", word), re.compile(low), re.compile(cased))
    for word, low, cased in [
        (
            "authorization",
            _header("authorization", _SCHEMES),
            _header(_cased("authorization"), _cased(_SCHEMES)),
        ),
        *((word, _keyed(word), _keyed(_cased(word))) for word in _WORDS),
    ]
)
# Past this many occurrences of a pass's literal, matching the original text directly (a
# scan of a few milliseconds a MiB) is cheaper than matching the lower-cased copy and
# recovering the original case of the pieces by position (about 0.4 us a value).
_MANY = 20_000
# Keys of ``extra=`` fields and logged dicts that are credentials by name.
_KEY_CHARS = re.compile(r"[\w.-]*+")
_KEY_WORDS = (
    "apikey",
    "secretkey",
    "signature",
    "api_key",
    "secret",
    "password",
    "token",
    "authorization",
)

# What str.split() takes for whitespace, other than the space itself.
_ONE_LINE = dict.fromkeys(map(ord, "\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029"), " ")

_secrets_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # longest first


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in logs and in :func:`redact` output.

    Its URL-encoded forms are registered too: signed CloudStack requests carry base64
    secrets and signatures whose ``+/=`` appear percent-encoded in logged URLs.
    """
    global _secrets
    if not value:  # an empty secret would match between every character
        return
    with _secrets_lock:
        known = set(_secrets) | {value, url_quote(value, safe=""), quote_plus(value, safe="")}
        # Longest first, so a secret that contains another is masked whole.
        _secrets = tuple(sorted(known, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with registered secrets and ``key=value`` credentials replaced by ``***``.

    Linear in ``len(text)`` whatever the text is (see the module docstring); callers with
    unbounded text should still prefer :func:`clip`, which redacts only what it keeps.
    """
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    low = _lower(text)
    for literal, on_low, on_text in _PASSES:
        if literal not in low:  # every match starts with it: nothing to scan for
            continue
        if text != low and low.count(literal) > _MANY:
            parts = on_text.split(text)
            if len(parts) > 1:
                parts[2::3] = [MASK] * (len(parts) // 3)
                text = "".join(parts)
                low = _lower(text)
        else:
            text, low = _mask(text, low, on_low)
    return text


def _lower(text: str) -> str:
    """``text`` lower-cased, with the same length (so positions carry over)."""
    low = text.lower()
    if len(low) != len(text):  # only "İ" lower-cases to two characters
        low = text.replace("\u0130", "I").lower()
    return low


def _mask(text: str, low: str, pattern: re.Pattern[str]) -> tuple[str, str]:
    """Mask the value group of every match of ``pattern`` in ``low``, applied to ``text``.

    ``re.split`` hands back ``[text, key, value, text, key, value, ..., text]`` in one
    C-level pass, and masking every third item is a slice assignment: no Python call per
    match, which matters when a hostile text is a hundred thousand ``token=x&``.
    """
    parts = pattern.split(low)
    if len(parts) == 1:
        return text, low
    values = len(parts) // 3
    offsets = list(accumulate(map(len, parts))) if text != low else []
    parts[2::3] = [MASK] * values
    masked_low = "".join(parts)
    if text == low:
        return masked_low, masked_low
    # Recover the original case of what is kept, by position: the text between one
    # masked value and the next is one slice of the original.
    begins = chain((0,), islice(offsets, 2, None, 3))
    ends = chain(islice(offsets, 1, None, 3), (len(text),))
    kept = map(text.__getitem__, map(slice, begins, ends))
    return MASK.join(kept), masked_low


def _safe_end(text: str, end: int) -> int:
    """``end``, moved left until no registered secret straddles it.

    Cutting through a secret would leave its first part visible and unrecognisable.
    """
    moved = True
    while moved:
        moved = False
        for secret in _secrets:
            at = text.find(secret, max(0, end - len(secret) + 1), end + len(secret) - 1)
            if 0 <= at < end:
                end, moved = at, True
    return end


def _cut(text: str, limit: int, marker: Callable[[int], str], one_line: bool = False) -> str:
    if len(text) <= limit:
        head, rest = text, ""
    else:
        end = _safe_end(text, limit)
        head, rest = text[:end], marker(len(text) - end)
    if one_line:
        head = head.translate(_ONE_LINE)
    return redact(head) + rest


def _more(count: int) -> str:
    return f"… ({count} more characters)"


def clip(text: str, limit: int = MAX_FIELD, *, one_line: bool = False) -> str:
    """``text`` redacted, cut to ``limit`` characters plus a ``… (N more characters)`` mark.

    Only the part kept is redacted, so this is cheap on any size of input.  ``one_line``
    turns line breaks and other whitespace controls into spaces (for a header value).
    """
    return _cut(text, limit, _more, one_line)


def quote(value: object, limit: int = 200) -> str:
    """A received value as an error message or a dead-letter reason should quote it.

    Its ``repr`` (so its type and bounds are visible), on one line, redacted, and cut to
    about ``limit`` characters ending with ``…``: ``f"bad version {quote(v)}"``.
    """
    limit = max(limit, 2)
    if isinstance(value, str | bytes | bytearray):
        # Keep a secret's length past the cut, so _safe_end sees it whole.
        room = limit + max(map(len, _secrets), default=0)
        text = repr(value[:room])
        if len(value) > room:
            text = text[:-1]  # no closing quote: the value goes on
    else:
        text = repr(value)
    return _cut(text, limit if len(text) <= limit else limit - 1, lambda _: "…", one_line=True)


def is_sensitive_key(key: str) -> bool:
    low = key.lower()
    return low.endswith(_KEY_WORDS) and _KEY_CHARS.fullmatch(low) is not None


def redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return clip(value, MAX_FIELD)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth < MAX_DEPTH and isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index == MAX_ITEMS:
                out["…"] = f"{len(value) - MAX_ITEMS} more items"
                break
            name = clip(str(key), MAX_FIELD)
            out[name] = MASK if is_sensitive_key(name) else redact_value(item, depth + 1)
        return out
    if depth < MAX_DEPTH and isinstance(value, list | tuple | set | frozenset):
        items = [redact_value(item, depth + 1) for item in islice(value, MAX_ITEMS)]
        if len(value) > MAX_ITEMS:
            items.append(f"… ({len(value) - MAX_ITEMS} more items)")
        return items
    # The formatter would str() it anyway; doing it here lets the result be redacted.
    return clip(str(value), MAX_FIELD)
