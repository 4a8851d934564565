"""csfabric.cloudstack._parse: what is accepted, what is refused (with a reason), identity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from csfabric.cloudstack import _native as native
from csfabric.cloudstack._parse import (
    UNKNOWN_FSM_EVENT,
    NativeMessage,
    event_identity,
    parse_list_events_row,
    parse_native,
)
from csfabric.kernel import CloudEvent, EnvelopeError, subject_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SRC = "cloud-a"
VM = "6f1c7a0e-2b1d-4c3e-9f5a-1d2e3f4a5b6c"
WHEN = datetime(2024, 11, 28, 8, 15, tzinfo=UTC)
CET = timezone(timedelta(hours=1))
ACTION: dict[str, str] = {
    "entityuuid": VM,
    "description": "Successfully completed starting Vm. Vm Id: " + VM,
    "eventDateTime": "2024-11-28 09:15:00 +0100",
    "entity": "VirtualMachine",
    "event": "VM.START",
    "user": "u-1",
    "account": "a-1",
    "status": "Completed",
}
ACTION_KEY = f"management-server.ActionEvent.VM-START.VirtualMachine.{VM}"


def _raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _parse(body: dict[str, Any] | bytes, transport: str = "kafka", **kw: Any) -> CloudEvent:
    raw = body if isinstance(body, bytes) else _raw(body)
    event = parse_native(NativeMessage(raw, transport, **kw), source=SRC)  # type: ignore[arg-type]
    assert event is not None
    return event


def _refused(body: dict[str, Any] | bytes, transport: str = "kafka", **kw: Any) -> str:
    raw = body if isinstance(body, bytes) else _raw(body)
    with pytest.raises(EnvelopeError) as info:
        parse_native(NativeMessage(raw, transport, **kw), source=SRC)  # type: ignore[arg-type]
    assert info.value.reason
    return info.value.reason


# --- accepted -------------------------------------------------------------------------


def test_action_event_fields() -> None:
    event = _parse(ACTION, "amqp", routing_key=ACTION_KEY)
    assert event.type == "cloudstack.action.VM.START"
    assert subject_for(event) == "csfabric.cloudstack.action.VM.START"
    assert event.subject == VM
    assert event.time == WHEN
    assert event.time.utcoffset() == timedelta(hours=1)
    assert event.data["category"] == "action"
    assert event.data["eventDateTime"] == "2024-11-28T09:15:00+01:00"
    assert event.data["native"] == ACTION
    assert event.data["failed"] is False


@pytest.mark.parametrize(
    "description",
    ["Error while starting Vm. Vm Id: x", "Copying snapshot ID: 9 failed", "error while x"],
)
def test_failed_actions_are_completed_with_an_error_description(description: str) -> None:
    event = _parse(ACTION | {"description": description})
    assert event.data["status"] == "Completed"
    assert event.data["failed"] is True


def test_started_with_error_text_is_not_yet_failed() -> None:
    assert (
        _parse(ACTION | {"status": "Started", "description": "Error while"}).data["failed"] is False
    )


def test_missing_null_keys_are_fine() -> None:
    body = {k: v for k, v in ACTION.items() if k not in ("entity", "entityuuid")}
    event = _parse(body)
    assert event.subject is None
    assert "entity" not in event.data


def test_java_class_entity_is_the_same_event_as_the_type_name() -> None:
    old = _parse(ACTION | {"entity": "com.cloud.vm.VirtualMachine"})
    new = _parse(ACTION)
    assert old.data["entity"] == "VirtualMachine"
    assert old.id == new.id
    assert old.data["native"]["entity"] == "com.cloud.vm.VirtualMachine"  # native unchanged


@pytest.mark.parametrize(
    "stamp", ["2024-11-28 08:15:00 +0000", "2024-11-28 03:15:00 -0500", "2024-11-28 13:45:00 +0530"]
)
def test_any_zone_offset_is_the_same_instant_and_the_same_event(stamp: str) -> None:
    event = _parse(ACTION | {"eventDateTime": stamp})
    assert event.time == WHEN
    assert event.id == _parse(ACTION).id


def test_a_bom_is_accepted() -> None:
    assert _parse(b"\xef\xbb\xbf" + _raw(ACTION)).id == _parse(ACTION).id


def test_category_inference_without_a_routing_key() -> None:
    usage = {
        "zone": "z",
        "resource": "com.cloud.vm.VirtualMachine",
        "id": VM,
        "account": "a",
        "event": "VM.CREATE",
        "eventDateTime": ACTION["eventDateTime"],
    }
    alert = {
        "event": "ALERT.COMPUTE.HOST",
        "subject": "s",
        "body": "b",
        "eventDateTime": ACTION["eventDateTime"],
    }  # no dataCenterId: ALERT.* decides
    state = {
        "resource": "Volume",
        "id": VM,
        "old-state": "Ready",
        "new-state": "Destroy",
        "eventDateTime": ACTION["eventDateTime"],
    }
    assert _parse(usage).type == "cloudstack.usage.VM.CREATE"
    assert _parse(alert).type == "cloudstack.alert.ALERT.COMPUTE.HOST"
    assert _parse(alert).subject is None
    assert _parse(state).type == f"cloudstack.state.Volume.{UNKNOWN_FSM_EVENT}"
    assert _parse(ACTION).type == "cloudstack.action.VM.START"


def test_state_routing_key_with_star_type_falls_back() -> None:
    state = {
        "resource": "VirtualMachine",
        "id": VM,
        "old-state": "Running",
        "new-state": "Stopping",
        "eventDateTime": ACTION["eventDateTime"],
    }
    key = f"management-server.ResourceStateEvent.*.VirtualMachine.{VM}"
    assert _parse(state, "amqp", routing_key=key).type.endswith(".Transition")


def test_webhook_header_lookup_is_case_insensitive() -> None:
    event = _parse(ACTION, "webhook", headers={"X-Cs-Event-Id": "row-1"})
    assert event.extensions == {"cseventid": "row-1"}


# --- refused, each with its reason -----------------------------------------------------

REFUSALS: list[tuple[str, bytes, dict[str, Any], str]] = [
    ("empty", b"", {}, "empty"),
    ("not utf-8", b'{"a":"\xff"}', {}, "not UTF-8"),
    ("not json", b"{event", {}, "not JSON"),
    ("array", b"[]", {}, "JSON object"),
    ("number value", _raw(ACTION | {"id": 5}), {}, "must be a string"),
    ("null value", _raw(ACTION | {"project": None}), {}, "got null"),
    ("duplicate key", b'{"event":"A","event":"B"}', {}, "repeats the key"),
    ("no event", _raw({k: v for k, v in ACTION.items() if k != "event"}), {}, "'event'"),
    (
        "no status (amqp)",
        _raw({k: v for k, v in ACTION.items() if k != "status"}),
        {"transport": "amqp", "routing_key": ACTION_KEY},
        "'status'",
    ),
    ("bad status", _raw(ACTION | {"status": "Done"}), {}, "status 'Done'"),
    ("iso datetime", _raw(ACTION | {"eventDateTime": "2024-11-28T09:15:00Z"}), {}, "eventDateTime"),
    (
        "no datetime",
        _raw({k: v for k, v in ACTION.items() if k != "eventDateTime"}),
        {},
        "eventDateTime",
    ),
    (
        "unknown category",
        _raw(ACTION),
        {
            "transport": "amqp",
            "routing_key": "management-server.FooEvent.VM-START.VirtualMachine.x",
        },
        "FooEvent",
    ),
    (
        "async job category",
        _raw(ACTION),
        {"transport": "amqp", "routing_key": "management-server.AsyncJobEvent.x.y.z"},
        "not ingested",
    ),
    ("short routing key", _raw(ACTION), {"transport": "amqp", "routing_key": "a.b"}, "words"),
    (
        "mismatched type",
        _raw(ACTION),
        {"transport": "amqp", "routing_key": ACTION_KEY.replace("VM-START", "VM-STOP")},
        "does not match",
    ),
    ("bad event name", _raw(ACTION | {"event": "VM START"}), {}, "dotted words"),
    ("wildcard event name", _raw(ACTION | {"event": "VM.>"}), {}, "dotted words"),
    ("no category", _raw({"eventDateTime": ACTION["eventDateTime"], "event": "X"}), {}, "category"),
    (
        "bad state status",
        _raw(
            {
                "resource": "Volume",
                "id": "v",
                "old-state": "A",
                "new-state": "B",
                "status": "x",
                "eventDateTime": ACTION["eventDateTime"],
            }
        ),
        {},
        "status",
    ),
    (
        "test body on amqp",
        b'{"CloudStack":"works!"}',
        {"transport": "amqp", "routing_key": ACTION_KEY},
        "outside a webhook",
    ),
    ("too big", _raw(ACTION | {"description": "x" * (1 << 20)}), {}, "over the"),
]


@pytest.mark.parametrize(
    ("raw", "kw", "reason"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_name_the_defect(raw: bytes, kw: dict[str, Any], reason: str) -> None:
    args = {"transport": "kafka"} | kw
    assert reason in _refused(raw, **args)


def test_test_webhook_delivery_is_none() -> None:
    raw = b'{ "CloudStack": "works!" }'
    msg = NativeMessage(raw, "webhook", headers={"X-CS-Event": "TEST.WEBHOOK"})
    assert parse_native(msg, source=SRC) is None


# --- identity --------------------------------------------------------------------------


def test_identity_ignores_key_order_and_depends_on_every_field() -> None:
    shuffled = dict(reversed(list(ACTION.items())))
    assert event_identity("action", shuffled) == event_identity("action", ACTION)
    assert event_identity("ActionEvent", ACTION) == event_identity("action", ACTION)
    assert event_identity("usage", ACTION) != event_identity("action", ACTION)
    for key in ACTION:
        changed = ACTION | {key: ACTION[key] + "x"}
        assert event_identity("action", changed) != event_identity("action", ACTION), key


def test_same_body_through_amqp_and_webhook_is_one_event() -> None:
    amqp = _parse(ACTION, "amqp", routing_key=ACTION_KEY)
    hook = _parse(ACTION, "webhook", headers={"X-CS-Event-ID": "e-1", "X-CS-Event": "VM.START"})
    assert amqp.id == hook.id


def test_list_events_rows() -> None:
    row: dict[str, Any] = {
        "id": "r-1",
        "username": "admin",
        "type": "VM.START",
        "level": "INFO",
        "description": "Error while starting",
        "account": "admin",
        "accountid": "a-1",
        "domainid": "d",
        "domain": "ROOT",
        "created": "2024-11-28T09:15:00+0100",
        "state": "Completed",
        "parentid": "p",
        "archived": False,
    }
    event = parse_list_events_row(row, source=SRC)
    assert event.type == "cloudstack.action.VM.START"
    assert event.extensions["cseventid"] == "r-1"
    assert event.data["account"] == "a-1"
    assert event.data["failed"] is True
    assert event.subject is None
    assert event.time == WHEN
    bad_rows: list[tuple[dict[str, Any], str]] = [
        ({"id": None}, "'id'"),
        ({"created": "2024-11-28 09:15:00"}, "created"),
        ({"state": "Done"}, "state"),
        ({"type": 3}, "string"),
    ]
    for bad, reason in bad_rows:
        with pytest.raises(EnvelopeError, match=reason):
            parse_list_events_row(row | bad, source=SRC)


# --- hypothesis ------------------------------------------------------------------------

_text = st.text(max_size=40)
_keys = (
    st.sampled_from(
        [
            "event",
            "status",
            "entity",
            "entityuuid",
            "eventDateTime",
            "resource",
            "id",
            "zone",
            "old-state",
            "new-state",
            "dataCenterId",
            "description",
            "account",
            "CloudStack",
        ]
    )
    | _text
)
_stamp = st.datetimes(timezones=st.timezones()).map(
    lambda d: native.format_event_datetime(d, d.tzinfo or UTC)
)
_values = _text | _stamp | st.sampled_from((*native.ACTION_STATUSES, "works!", "ALERT.X"))
_word = st.text(alphabet="abcXYZ-_*.09", max_size=12)
_routing = (
    st.none()
    | st.lists(_word, max_size=7).map(".".join)
    | st.tuples(
        _word,
        st.sampled_from(["ActionEvent", "UsageEvent", "AlertEvent", "ResourceStateEvent"]),
        _word,
        _word,
        _word,
    ).map(".".join)
)
_headers = st.dictionaries(st.sampled_from(["X-CS-Event-ID", "x-cs-event", "User-Agent"]), _text)
_transport = st.sampled_from(["amqp", "kafka", "webhook", "poll"])


def _never_crashes(
    raw: bytes, transport: str, routing: str | None, headers: dict[str, str]
) -> None:
    msg = NativeMessage(raw, transport, routing_key=routing, headers=headers)  # type: ignore[arg-type]
    try:
        event = parse_native(msg, source=SRC)
    except EnvelopeError as exc:
        reason = exc.reason
        event = None
    else:
        reason = "accepted"
    assert reason.strip()  # every rejection says why
    if event is not None:
        assert event.to_json()
        assert subject_for(event).startswith("csfabric.cloudstack.")
        assert ".." not in subject_for(event)
        assert not subject_for(event).endswith(".")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), _transport, _routing, _headers)
def test_no_bytes_crash_the_parser(
    raw: bytes, transport: str, routing: str | None, headers: dict[str, str]
) -> None:
    _never_crashes(raw, transport, routing, headers)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=8), _transport, _routing, _headers)
def test_no_string_map_crashes_the_parser(
    body: dict[str, str], transport: str, routing: str | None, headers: dict[str, str]
) -> None:
    _never_crashes(native.gson_dumps(body), transport, routing, headers)


@settings(max_examples=200)
@given(
    st.dictionaries(
        _keys, st.none() | st.integers() | st.booleans() | st.lists(_text) | _values, max_size=6
    ),
    _transport,
)
def test_any_json_object_parses_or_is_refused(body: dict[str, Any], transport: str) -> None:
    _never_crashes(json.dumps(body).encode(), transport, None, {})


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(
            ["id", "type", "state", "created", "resourceid", "accountid", "description"]
        ),
        st.none() | st.integers() | _text | _values,
        max_size=7,
    )
)
def test_no_row_crashes_the_row_parser(row: dict[str, Any]) -> None:
    try:
        event: CloudEvent | None = parse_list_events_row(row, source=SRC)
    except EnvelopeError as exc:
        reason, event = exc.reason, None
    else:
        reason = "accepted"
    assert reason.strip()
    assert event is None or event.type.startswith("cloudstack.action.")


_name = st.from_regex(r"\A[A-Z]{1,8}(\.[A-Z]{1,8}){0,2}\Z")
_uuid = st.uuids().map(str)
_free = st.text(max_size=30)  # descriptions: any text, Gson escapes and all
_when = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_tz = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def _built(draw: st.DrawFn) -> native.NativeEvent:
    when, tz = draw(_when), draw(_tz)
    kind = draw(st.sampled_from(["action", "usage", "alert", "state"]))
    if kind == "action":
        return native.action_event(
            draw(_name),
            draw(st.sampled_from(native.ACTION_STATUSES)),
            draw(_free),
            user=draw(_uuid),
            account=draw(_uuid),
            entity=draw(st.none() | st.sampled_from(["VirtualMachine", "com.cloud.vm.Snapshot"])),
            entity_uuid=draw(st.none() | _uuid),
            when=when,
            tz=tz,
            project=draw(st.none() | _uuid),
            related={"DataCenter": draw(_uuid)},
        )
    if kind == "usage":
        return native.usage_event(
            draw(_name),
            zone=draw(st.none() | _uuid),
            resource_class="com.cloud.vm.VirtualMachine",
            resource_uuid=draw(_uuid),
            account=draw(_uuid),
            when=when,
            tz=tz,
        )
    if kind == "alert":
        return native.alert_event(
            "ALERT." + draw(_name),
            zone_uuid=draw(st.none() | _uuid),
            pod_uuid=draw(st.none() | _uuid),
            subject=draw(_free),
            body=draw(_free),
            when=when,
            tz=tz,
        )
    return native.state_event(
        draw(st.sampled_from(["VirtualMachine", "Volume", "Snapshot"])),
        draw(_uuid),
        draw(st.sampled_from(["StopRequested", "OperationSucceeded"])),
        "Running",
        "Stopped",
        when=when,
        tz=tz,
        status=draw(
            st.none() | st.sampled_from(["preStateTransitionEvent", "postStateTransitionEvent"])
        ),
    )


_CATEGORY = {
    "ActionEvent": "action",
    "UsageEvent": "usage",
    "AlertEvent": "alert",
    "ResourceStateEvent": "state",
}


@settings(max_examples=300)
@given(_built())
def test_builder_events_round_trip_on_every_feed(built: native.NativeEvent) -> None:
    family = _CATEGORY[built.category]
    ident = event_identity(family, built.body)
    amqp = _parse(built.body_json(), "amqp", routing_key=built.routing_key())
    kafka = _parse(built.body_json(), "kafka", kafka_key=built.kafka_key)
    assert amqp.id == kafka.id == ident
    assert amqp.data["native"] == kafka.data["native"] == built.body
    assert amqp.data["category"] == family
    assert built.when is not None
    assert amqp.time == built.when.replace(microsecond=0)
    if family == "state":
        assert amqp.type == f"cloudstack.state.{built.resource_type}.{built.event_type}"
    else:
        assert amqp.type == kafka.type == f"cloudstack.{family}.{built.event_type}"
    if family == "action":
        hook = _parse(built.body_json(), "webhook", headers={"X-CS-Event-ID": built.event_id})
        assert hook.id == ident
        assert hook.extensions["cseventid"] == built.event_id


@settings(max_examples=300)
@given(
    _built(),
    st.lists(st.sampled_from([*ACTION, "id", "resource", "old-state", "dataCenterId"])),
    st.dictionaries(_keys, _values, max_size=3),
    _transport,
    st.booleans(),
)
def test_edited_real_bodies_parse_or_are_refused(
    built: native.NativeEvent,
    dropped: list[str],
    changed: dict[str, str],
    transport: str,
    with_key: bool,
) -> None:
    # Near-valid bodies reach the deeper checks that random maps rarely get past.
    body = {k: v for k, v in built.body.items() if k not in dropped} | changed
    _never_crashes(
        native.gson_dumps(body), transport, built.routing_key() if with_key else None, {}
    )
