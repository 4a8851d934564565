"""The one duration type every policy and setting uses.

Operators write ``30s``, ``15m``, ``2h``, ``7d``, ``1w`` or combinations (``1h30m``), or
ISO 8601 (``PT15M``, ``P7D``, ``P1DT2H``); a bare number means seconds.  Values are kept
as :class:`~datetime.timedelta` and written back in the compact form, so a stored policy
reads like the one the operator applied.  Arithmetic goes through :class:`~decimal.Decimal`
so ``1.000001s`` survives a round trip exactly.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

_NUM = r"\d+(?:\.\d+)?"
# Units largest first; each at most once.  Lower case only: "15M" would read as months.
_COMPACT = re.compile(
    rf"^(?=\d)(?:(?P<w>{_NUM})w)?(?:(?P<d>{_NUM})d)?(?:(?P<h>{_NUM})h)?"
    rf"(?:(?P<m>{_NUM})m)?(?:(?P<s>{_NUM})s)?$",
    re.ASCII,
)
# ISO 8601 durations without years/months, which have no fixed length.
_ISO = re.compile(
    rf"^P(?=\d|T\d)(?:(?P<w>{_NUM})W)?(?:(?P<d>{_NUM})D)?"
    rf"(?:T(?=\d)(?:(?P<h>{_NUM})H)?(?:(?P<m>{_NUM})M)?(?:(?P<s>{_NUM})S)?)?$",
    re.IGNORECASE | re.ASCII,
)
_CALENDAR = re.compile(r"^P[^T]*[YM]", re.IGNORECASE)
_BARE = re.compile(rf"^{_NUM}$", re.ASCII)
_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_MICRO = Decimal(1_000_000)

# The same grammar for JSON Schema (ECMA 262: no named groups, ASCII digits).
_N = r"[0-9]+(\.[0-9]+)?"
PATTERN = (
    rf"^(?:(?=[0-9])({_N}w)?({_N}d)?({_N}h)?({_N}m)?({_N}s)?"
    rf"|[Pp](?=[0-9]|[Tt][0-9])({_N}[Ww])?({_N}[Dd])?"
    rf"([Tt](?=[0-9])({_N}[Hh])?({_N}[Mm])?({_N}[Ss])?)?"
    rf"|{_N})$"
)
DESCRIPTION = (
    "A duration: 30s, 15m, 2h, 7d, 1w or combinations such as 1h30m; ISO 8601 such as "
    "PT15M or P1DT2H; or a number of seconds."
)


def _bad(value: object) -> ValueError:
    return ValueError(
        f"bad duration {value!r}: expected e.g. 30s, 15m, 7d or ISO 8601 such as PT15M"
    )


def _from_seconds(seconds: Decimal, original: object) -> timedelta:
    if seconds < 0:
        raise ValueError(f"bad duration {original!r}: a duration cannot be negative")
    try:
        return timedelta(microseconds=int((seconds * _MICRO).to_integral_value()))
    except OverflowError:
        raise ValueError(f"bad duration {original!r}: too long") from None


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse any accepted duration spelling; raise :class:`ValueError` naming the input."""
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError(f"bad duration {value!r}: a duration cannot be negative")
        return value
    # bool is an int subclass; "true" as a duration is a mistake, not one second.
    if isinstance(value, bool):
        raise _bad(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise _bad(value)
        return _from_seconds(Decimal(value), value)
    if not isinstance(value, str):
        raise _bad(value)
    text = value.strip()
    match = _COMPACT.match(text) or _ISO.match(text)
    if match is None:
        if _BARE.match(text):
            return _from_seconds(Decimal(text), value)
        if _CALENDAR.match(text):
            raise ValueError(
                f"bad duration {value!r}: years and months have no fixed length;"
                " use days or weeks, e.g. P30D"
            )
        raise _bad(value)
    try:
        total = sum(
            (
                Decimal(amount) * _SECONDS[unit]
                for unit, amount in match.groupdict().items()
                if amount
            ),
            Decimal(0),
        )
    except InvalidOperation:  # pragma: no cover - the regex admits only plain decimals
        raise _bad(value) from None
    return _from_seconds(total, value)


def format_duration(td: timedelta) -> str:
    """The compact spelling (``15m``, ``7d``, ``1d2h``, ``1.5s``); ``0s`` for zero."""
    if td < timedelta(0):
        raise ValueError(f"cannot format negative duration {td!r}")
    days, seconds, micros = td.days, td.seconds, td.microseconds
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if micros:
        parts.append(f"{seconds}.{micros:06d}".rstrip("0") + "s")
    elif seconds or not parts:
        parts.append(f"{seconds}s")
    return "".join(parts)


def _validate(value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        # A custom error type keeps pydantic from prefixing "Value error, " and lets the
        # policy loader recognise duration mistakes.
        raise PydanticCustomError("duration", "{message}", {"message": str(exc)}) from None


Duration = Annotated[
    timedelta,
    PlainValidator(_validate),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": DESCRIPTION,
            "examples": ["30s", "15m", "7d", "PT15M"],
        }
    ),
]
"""A pydantic field type: parses every accepted spelling, dumps the compact one in JSON."""

__all__ = ["DESCRIPTION", "PATTERN", "Duration", "format_duration", "parse_duration"]
