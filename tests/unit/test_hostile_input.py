"""Hostile bodies: every parser returns an event that serialises, or an EnvelopeError.

Out-of-range zone offsets on the first and last representable day (an OverflowError in
``astimezone(UTC)`` before) and lone surrogates (which our own Gson-style encoder writes
as ``\\ud800`` escapes, and which UTF-8 cannot carry) are refused at parse time with a
reason, so the feeds dead-letter them at once instead of retrying them for ever.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from csfabric.cloudstack import NativeMessage, parse_list_events_row, parse_native
from csfabric.cloudstack import _native as native
from csfabric.kernel import CloudEvent, EnvelopeError, make_event, parse_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SRC = "test-cloud"
OUT_OF_RANGE = ["0001-01-01 00:00:00 +0100", "9999-12-31 23:59:59 -1400"]
VM = "9c0cc6b4-2ea1-4f5b-a0c1-3b1e1a6d2f11"


def _action(**changes: str) -> dict[str, str]:
    body = {
        "event": "VM.CREATE",
        "status": "Completed",
        "eventDateTime": "2024-11-28 09:15:00 +0100",
        "entity": "VirtualMachine",
        "entityuuid": VM,
        "description": "Successfully completed deploying Vm",
        "user": "u",
        "account": "a",
    }
    return body | changes


def _row(**changes: Any) -> dict[str, Any]:
    row = {
        "id": "0b0fbd5e-2f5c-4a57-8d8e-2f5c4a578d8e",
        "type": "VM.CREATE",
        "state": "Completed",
        "created": "2024-11-28T09:15:00+0100",
        "description": "Successfully completed deploying Vm",
        "resourceid": VM,
    }
    return row | changes


@pytest.mark.parametrize("stamp", OUT_OF_RANGE)
@pytest.mark.parametrize("transport", ["amqp", "kafka", "webhook"])
def test_an_out_of_range_event_datetime_is_refused_with_a_reason(
    stamp: str, transport: str
) -> None:
    raw = native.gson_dumps(_action(eventDateTime=stamp))
    with pytest.raises(EnvelopeError, match="out of range"):
        parse_native(NativeMessage(raw, transport), source=SRC)  # type: ignore[arg-type]


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+0100", "9999-12-31T23:59:59-1400"])
def test_an_out_of_range_row_date_is_refused_with_a_reason(stamp: str) -> None:
    with pytest.raises(EnvelopeError, match="out of range"):
        parse_list_events_row(_row(created=stamp), source=SRC)


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"])
def test_an_out_of_range_cloudevent_time_is_refused_with_a_reason(stamp: str) -> None:
    raw = json.dumps(
        {"specversion": "1.0", "id": "x", "source": "/s", "type": "a.b", "time": stamp}
    )
    with pytest.raises(EnvelopeError, match="out of range"):
        parse_event(raw)


def test_the_edges_of_the_range_still_parse() -> None:
    for stamp in ("0001-01-01 01:00:00 +0100", "9999-12-31 23:59:59 +0000"):
        event = parse_native(
            NativeMessage(native.gson_dumps(_action(eventDateTime=stamp)), "kafka"), source=SRC
        )
        assert event is not None
        assert event.to_json()


@pytest.mark.parametrize("transport", ["amqp", "kafka", "webhook"])
def test_a_lone_surrogate_in_a_body_is_refused_as_invalid_unicode(transport: str) -> None:
    raw = native.gson_dumps(_action(description="bad \ud800 text"))
    assert b"\\ud800" in raw  # what our own encoder (and Gson) writes
    with pytest.raises(EnvelopeError, match=r"lone surrogate.*invalid Unicode"):
        parse_native(NativeMessage(raw, transport), source=SRC)  # type: ignore[arg-type]


def test_a_lone_surrogate_in_a_key_is_refused() -> None:
    raw = native.gson_dumps(_action() | {"x\udc00": "v"})
    with pytest.raises(EnvelopeError, match="invalid Unicode"):
        parse_native(NativeMessage(raw, "kafka"), source=SRC)


def test_a_lone_surrogate_in_a_row_or_cloudevent_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="invalid Unicode"):
        parse_list_events_row(_row(description="\udfff"), source=SRC)
    with pytest.raises(EnvelopeError, match="invalid Unicode"):
        parse_list_events_row(_row(extra={"nested": ["\ud800"]}), source=SRC)
    raw = b'{"specversion":"1.0","id":"x","source":"/s","type":"a.b","data":{"d":"\\ud800"}}'
    with pytest.raises(EnvelopeError, match="invalid Unicode"):
        parse_event(raw)
    with pytest.raises(EnvelopeError, match="invalid Unicode"):
        make_event(type="a.b", source="/s", id="x", data=["\ud800"])


def test_a_valid_surrogate_pair_is_fine() -> None:
    raw = native.gson_dumps(_action(description="emoji \U0001f600"))
    event = parse_native(NativeMessage(raw, "kafka"), source=SRC)
    assert event is not None
    assert "\U0001f600".encode() in event.to_json()


def test_to_json_turns_an_unwritable_event_into_an_envelope_error() -> None:
    # data built in code, after validation: still a permanent error, never a TypeError.
    event = make_event(type="a.b", source="/s", id="x", data={"ok": 1})
    broken = event.model_copy(update={"data": {"when": datetime.now(UTC)}})
    with pytest.raises(EnvelopeError, match="cannot be written"):
        broken.to_json()


# --- hypothesis: nothing but an event that serialises, or an EnvelopeError -------------

# Every code point, lone surrogates included (st.text leaves them out by default).
_any_char = st.characters(codec=None, categories=None)
_hostile_text = st.text(_any_char, max_size=30)
_edge_stamps = st.sampled_from(
    [
        *OUT_OF_RANGE,
        "0001-01-01 00:00:00 +0000",
        "0001-01-01 00:59:59 +0100",
        "9999-12-31 23:59:59 +0000",
        "9999-12-31 10:00:00 -1400",
        "2024-02-30 00:00:00 +0000",
        "2024-11-28 09:15:00 +9999",
        "2024-11-28 09:15:00 -2400",
    ]
)
_any_stamp = st.builds(
    lambda d, m: (
        f"{d:%Y-%m-%d %H:%M:%S} {'-' if m < 0 else '+'}{abs(m) // 60:02d}{abs(m) % 60:02d}"
    ),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
)
_values = _hostile_text | _edge_stamps | _any_stamp | st.sampled_from(["Completed", "Started"])
_keys = _hostile_text | st.sampled_from(
    ["event", "status", "eventDateTime", "entityuuid", "description", "resource", "id"]
)


def _check(parse: Any) -> None:
    try:
        event: CloudEvent | None = parse()
    except EnvelopeError as exc:
        reason = exc.reason
        assert reason.strip()
        return
    if event is not None:
        body = event.to_json()
        assert parse_event(body).id == event.id  # what we write, we read back


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(_keys, _values, max_size=8),
    st.sampled_from(["amqp", "kafka", "webhook"]),
    st.booleans(),
)
def test_hostile_string_maps_parse_or_are_refused(
    body: dict[str, str], transport: str, gson: bool
) -> None:
    base = _action() | body
    raw = native.gson_dumps(base) if gson else json.dumps(base).encode()
    _check(lambda: parse_native(NativeMessage(raw, transport), source=SRC))  # type: ignore[arg-type]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["amqp", "kafka", "webhook"]))
def test_hostile_bytes_parse_or_are_refused(raw: bytes, transport: str) -> None:
    _check(lambda: parse_native(NativeMessage(raw, transport), source=SRC))  # type: ignore[arg-type]
    _check(lambda: parse_event(raw))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["id", "type", "state", "created", "description", "resourceid"])
        | _hostile_text,
        _hostile_text
        | _edge_stamps.map(lambda s: s.replace(" ", "T", 1).replace(" ", ""))
        | st.sampled_from(["Completed", "VM.CREATE"]),
        max_size=7,
    )
)
def test_hostile_rows_parse_or_are_refused(changes: dict[str, str]) -> None:
    _check(lambda: parse_list_events_row(_row() | changes, source=SRC))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["id", "source", "type", "subject", "time", "data", "ext1"])
        | _hostile_text,
        _hostile_text
        | _edge_stamps.map(lambda s: s[:10] + "T" + s[11:19] + s[20:23] + ":" + s[23:]),
        max_size=8,
    )
)
def test_hostile_cloudevents_parse_or_are_refused(changes: dict[str, str]) -> None:
    body = {"specversion": "1.0", "id": "x", "source": "/s", "type": "a.b"} | changes
    raw = json.dumps(body).encode()
    _check(lambda: parse_event(raw))


def test_every_offset_on_the_first_and_last_day_parses_or_is_refused() -> None:
    # Exhaustive over whole-hour offsets at both ends of the calendar.
    for day in ("0001-01-01 00:00:00", "9999-12-31 23:59:59"):
        for hours in range(-23, 24):
            stamp = f"{day} {'-' if hours < 0 else '+'}{abs(hours):02d}00"
            raw = native.gson_dumps(_action(eventDateTime=stamp))
            _check(lambda raw=raw: parse_native(NativeMessage(raw, "kafka"), source=SRC))


def test_the_lone_surrogate_walk_is_linear_under_a_long_key() -> None:
    # A 350 KB key above 50,000 small ones, and one escape so that parse_event walks the
    # text: building every key's path on the way down made this 0.7 s of CPU a MiB.
    inner: dict[str, Any] = {f"k{i}": 0 for i in range(50_000)}
    inner["z"] = ["ok", "\ud800"]
    body = {"specversion": "1.0", "id": "x", "source": "/s", "type": "a.b"}
    raw = json.dumps(body | {"data": {"x" * 350_000: inner}}).encode()
    assert len(raw) < 1 << 20
    started = time.process_time()
    with pytest.raises(EnvelopeError, match=r"^data\.x+\.z\[1\] holds a lone surrogate"):
        parse_event(raw)
    assert time.process_time() - started < 0.1


def test_the_lone_surrogate_reason_names_its_path() -> None:
    with pytest.raises(EnvelopeError, match=r"^data\.a\[2\]\.b holds"):
        make_event(type="a.b", source="/s", id="x", data={"a": [0, 1, {"b": "\udc00"}]})
    with pytest.raises(EnvelopeError, match=r"^a key in data\.a\[0\] holds"):
        make_event(type="a.b", source="/s", id="x", data={"a": [{"\udc00": 1}]})
    with pytest.raises(EnvelopeError, match=r"^a key in event holds"):
        make_event(type="a.b", source="/s", id="x", data=None, **{"\udc00": "v"})


@pytest.mark.parametrize("bad", ["a..b", "a.b.", ".a", "."])
def test_an_event_type_with_an_empty_word_is_refused(bad: str) -> None:
    # Such a type makes a NATS subject no stream stores: the publish would fail as
    # "NATS away" for ever and block a Kafka partition.  Refused at parse: a dead letter.
    with pytest.raises(EnvelopeError, match="type"):
        make_event(type=bad, source="/s", id="x")
    raw = f'{{"specversion":"1.0","id":"x","source":"/s","type":"{bad}"}}'
    with pytest.raises(EnvelopeError, match="type"):
        parse_event(raw)
