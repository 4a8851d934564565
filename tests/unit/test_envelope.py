"""CloudEvents parsing: strict, specific, and never crashing on any input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from csfabric.kernel import CloudEvent, EnvelopeError, make_event, parse_event, subject_for
from hypothesis import given
from hypothesis import strategies as st

GOOD: dict[str, Any] = {
    "specversion": "1.0",
    "id": "7f1c1a52-3c47-5a8e-9b59-0d8e3f1b2c44",
    "source": "cloudstack/zone-london",
    "type": "cloudstack.action.VM.CREATE",
    "subject": "4b2a6c3e-1f0d-4b8a-9e51-2c7d8f9a0b1c",
    "time": "2024-11-28T08:15:00Z",
    "datacontenttype": "application/json",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "data": {"event": "VM.CREATE", "status": "Completed"},
}


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def test_round_trip_keeps_every_attribute() -> None:
    event = parse_event(encode({**GOOD, "csevent": "abc"}))
    assert event.extensions == {"csevent": "abc"}
    assert event.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert event.time == datetime(2024, 11, 28, 8, 15, tzinfo=UTC)
    again = parse_event(event.to_json())
    assert again == event
    assert again.to_json() == event.to_json()


def test_a_bom_and_a_zone_offset_are_accepted() -> None:
    raw = b"\xef\xbb\xbf" + encode({**GOOD, "time": "2024-11-28T09:15:00+01:00"})
    assert parse_event(raw).time == datetime(2024, 11, 28, 8, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "event is empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{nope", "not JSON"),
        (b"[1]", "must be a JSON object, got list"),
        (encode({**GOOD, "specversion": "0.3"}), "specversion must be '1.0', got '0.3'"),
        (encode({k: v for k, v in GOOD.items() if k != "specversion"}), "specversion"),
        (encode({k: v for k, v in GOOD.items() if k != "id"}), "id: required attribute"),
        (encode({k: v for k, v in GOOD.items() if k != "source"}), "source: required"),
        (encode({k: v for k, v in GOOD.items() if k != "type"}), "type: required"),
        (encode({**GOOD, "id": ""}), "id: String should have at least 1 character"),
        (encode({**GOOD, "id": 5}), "id: Input should be a valid string"),
        (encode({**GOOD, "time": "2024-11-28 08:15:00"}), "time: Value error, time must carry"),
        (encode({**GOOD, "time": "yesterday"}), "time: Input should be a valid datetime"),
        (encode({**GOOD, "traceparent": "00-xyz"}), "traceparent: String should match"),
        (encode({**GOOD, "Bad_Name": "x"}), "extension attribute 'Bad_Name'"),
        (encode({**GOOD, "nested": {"a": 1}}), "extension attribute 'nested' must be"),
        (encode({**GOOD, "data_base64": "AA=="}), "data_base64 is not supported"),
        (encode({**GOOD, "type": "has space"}), "type: String should match"),
    ],
)
def test_each_defect_gets_its_own_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        parse_event(raw)
    assert reason in caught.value.reason


def test_size_limit_is_configurable() -> None:
    raw = encode({**GOOD, "data": "x" * 2000})
    assert parse_event(raw, max_bytes=4096).id == GOOD["id"]
    with pytest.raises(EnvelopeError, match=r"over the 1024-byte limit"):
        parse_event(raw, max_bytes=1024)


@given(st.binary(max_size=512))
def test_no_bytes_crash_the_parser(raw: bytes) -> None:
    try:
        parse_event(raw)
    except EnvelopeError as exc:
        reason = exc.reason
    else:
        reason = "accepted"
    assert reason.strip()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from([*GOOD, "x", "Bad"]), json_values, max_size=10))
def test_every_json_object_is_accepted_or_rejected_with_a_reason(body: dict[str, Any]) -> None:
    try:
        event = parse_event(json.dumps(body).encode())
    except EnvelopeError as exc:
        reason, event = exc.reason, None
    else:
        reason = "accepted"
    assert reason.strip()
    if event is not None:
        assert isinstance(event, CloudEvent)
        assert parse_event(event.to_json()) == event


def test_subjects_follow_the_contract() -> None:
    cs = make_event(type="cloudstack.action.VM.CREATE", source="cs", id="1")
    life = make_event(type="environment.created", source="ci", id="2")
    assert subject_for(cs) == "csfabric.cloudstack.action.VM.CREATE"
    assert subject_for(life) == "csfabric.lifecycle.environment.created"


def test_make_event_validates_like_parse() -> None:
    with pytest.raises(EnvelopeError, match="id"):
        make_event(type="a.b", source="s", id="")


def test_deeply_nested_json_is_refused_not_a_crash() -> None:
    with pytest.raises(EnvelopeError, match="nested too deeply"):
        parse_event(b"[" * 100_000 + b"]" * 100_000)
