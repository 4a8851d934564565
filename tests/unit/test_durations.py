"""Durations: every accepted spelling, exact round trips, and no crash on any text."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from csfabric.kernel._durations import PATTERN, Duration, format_duration, parse_duration
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

MESSAGE = "bad duration '15 minutes': expected e.g. 30s, 15m, 7d or ISO 8601 such as PT15M"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("1.5s", timedelta(seconds=1.5)),
        ("0.5h", timedelta(minutes=30)),
        ("0s", timedelta(0)),
        (" 15m ", timedelta(minutes=15)),
        ("PT15M", timedelta(minutes=15)),
        ("P7D", timedelta(days=7)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
        ("PT0.25S", timedelta(milliseconds=250)),
        ("pt15m", timedelta(minutes=15)),
        ("90", timedelta(seconds=90)),
    ],
)
def test_accepted_spellings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert re.match(PATTERN, text.strip()), "the JSON Schema pattern must accept it too"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (30, timedelta(seconds=30)),
        (1.5, timedelta(seconds=1.5)),
        (timedelta(hours=1), timedelta(hours=1)),
    ],
)
def test_numbers_are_seconds(value: int | float | timedelta, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize(
    "text",
    # "15M" would read as months; "\u0663" is an Arabic-Indic digit, not ASCII.
    ["15 minutes", "", "P", "PT", "15M", "1m1h", "-5s", "1e5", "s", "P1DT", "1.s", "\u0663s"],
)
def test_rejected_spellings(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)
    assert not re.match(PATTERN, text), "the JSON Schema pattern must reject it too"


def test_message_names_the_input_and_the_expected_forms() -> None:
    with pytest.raises(ValueError, match=re.escape(MESSAGE)):
        parse_duration("15 minutes")


@pytest.mark.parametrize("text", ["P1M", "P1Y", "P1Y2M3D"])
def test_calendar_units_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="no fixed length"):
        parse_duration(text)


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), True, 1e300, timedelta(-1)])
def test_bad_numbers(value: float | timedelta) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(minutes=15), "15m"),
        (timedelta(days=7), "7d"),
        (timedelta(days=1, hours=2), "1d2h"),
        (timedelta(hours=1, seconds=1), "1h1s"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(microseconds=1), "0.000001s"),
        (timedelta(0), "0s"),
    ],
)
def test_format_is_compact(td: timedelta, text: str) -> None:
    assert format_duration(td) == text


def test_format_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(st.timedeltas(min_value=timedelta(0)))
def test_round_trip(td: timedelta) -> None:
    text = format_duration(td)
    assert parse_duration(text) == td
    assert re.match(PATTERN, text)


@given(st.text())
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        result = parse_duration(text)
    except ValueError:
        return
    assert isinstance(result, timedelta)
    assert result >= timedelta(0)


@given(st.from_regex(r"\A([0-9]{1,4}w)?([0-9]{1,4}d)?([0-9]{1,4}h)?([0-9]{1,4}m)?([0-9]{1,4}s)?\Z"))
def test_compact_forms_agree_with_the_pattern(text: str) -> None:
    if not text:
        return
    assert re.match(PATTERN, text)
    assert parse_duration(text) >= timedelta(0)


class _Model(BaseModel):
    every: Duration


def test_pydantic_field_parses_dumps_and_explains() -> None:
    model = _Model.model_validate({"every": "P1DT2H"})
    assert model.every == timedelta(days=1, hours=2)
    assert model.model_dump(mode="json") == {"every": "1d2h"}
    assert model.model_dump() == {"every": timedelta(days=1, hours=2)}
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate({"every": "15 minutes"})
    [error] = caught.value.errors()
    assert error["type"] == "duration"
    assert error["msg"] == MESSAGE


def test_json_schema_documents_the_forms() -> None:
    schema = _Model.model_json_schema()["properties"]["every"]
    assert {"type": "string", "pattern": PATTERN} in schema["anyOf"]
    assert "15m" in schema["description"]
