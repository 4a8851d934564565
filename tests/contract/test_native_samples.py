"""Real-format CloudStack samples through every feed's parsing path.

``samples/*.json`` are hand-written byte for byte in CloudStack's wire format (Gson compact,
every value a string, Java hash key order, Gson's ``\\u003c``-style escapes, null keys left
out); ``samples/routing_keys.txt`` has the AMQP routing key of each.  The same bytes must
give the same CloudEvent id whichever feed carried them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from csfabric.cloudstack import _native as native
from csfabric.cloudstack._parse import (
    NativeMessage,
    event_identity,
    parse_list_events_row,
    parse_native,
)
from csfabric.kernel import CloudEvent, EnvelopeError, parse_event, subject_for

SAMPLES = Path(__file__).parent / "samples"
SOURCE = "cloud-test"
VM = "6f1c7a0e-2b1d-4c3e-9f5a-1d2e3f4a5b6c"
SNAP = "7b7b7b7b-5555-4555-8555-555555555555"
VOL = "8c8c8c8c-6666-4666-8666-666666666666"
ZONE = "a1b2c3d4-0000-4000-8000-000000000001"
PROJ = "d00dfeed-7777-4777-8777-777777777777"

# file → (CloudEvent type from AMQP, subject, expected data fields)
EXPECTED: dict[str, tuple[str, str | None, dict[str, Any]]] = {
    "action_vm_create_created.json": (
        "cloudstack.action.VM.CREATE",
        VM,
        {"status": "Created", "entity": "VirtualMachine", "failed": False},
    ),
    "action_vm_create_scheduled.json": (
        "cloudstack.action.VM.CREATE",
        VM,
        {"status": "Scheduled", "failed": False},
    ),
    "action_vm_create_started.json": (
        "cloudstack.action.VM.CREATE",
        VM,
        {"status": "Started", "failed": False},
    ),
    "action_vm_create_completed.json": (
        "cloudstack.action.VM.CREATE",
        VM,
        {"status": "Completed", "failed": False},
    ),
    "action_vm_create_completed_bom.json": (
        "cloudstack.action.VM.CREATE",
        VM,
        {"status": "Completed", "failed": False},
    ),
    "action_snapshot_create_failed.json": (
        "cloudstack.action.SNAPSHOT.CREATE",
        SNAP,
        {"status": "Completed", "failed": True, "entity": "Snapshot"},
    ),
    "action_snapshot_copy_failed.json": (
        "cloudstack.action.SNAPSHOT.COPY",
        SNAP,
        {"status": "Completed", "failed": True},
    ),
    "action_volume_create_legacy.json": (
        "cloudstack.action.VOLUME.CREATE",
        VOL,
        {"entity": "Volume", "failed": False},
    ),
    "action_project_create.json": (
        "cloudstack.action.PROJECT.CREATE",
        PROJ,
        {
            "project": PROJ,
            "description": "Successfully completed creating project: R&D <blue> team's a=b",
        },
    ),
    "action_entityless.json": ("cloudstack.action.USER.LOGIN", None, {"status": "Completed"}),
    "usage_vm_create.json": (
        "cloudstack.usage.VM.CREATE",
        VM,
        {"category": "usage", "resource": "VirtualMachine", "zone": ZONE},
    ),
    "alert_compute_host.json": (
        "cloudstack.alert.ALERT.COMPUTE.HOST",
        ZONE,
        {"category": "alert", "dataCenterId": ZONE},
    ),
    "state_vm_pre.json": (
        "cloudstack.state.VirtualMachine.StopRequested",
        VM,
        {"status": "preStateTransitionEvent", "old-state": "Running", "new-state": "Stopping"},
    ),
    "state_vm_post.json": (
        "cloudstack.state.VirtualMachine.StopRequested",
        VM,
        {"status": "postStateTransitionEvent", "fsmEvent": "StopRequested"},
    ),
    "state_volume.json": (
        "cloudstack.state.Volume.CreateRequested",
        VOL,
        {"category": "state", "resource": "Volume", "new-state": "Creating"},
    ),
}


def _routing_keys() -> dict[str, str]:
    keys = {}
    for line in (SAMPLES / "routing_keys.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, key = line.split()
            keys[name] = key
    return keys


ROUTING = _routing_keys()


def _raw(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def _parse(msg: NativeMessage) -> CloudEvent:
    event = parse_native(msg, source=SOURCE)
    assert event is not None
    return event


def test_every_sample_has_an_expectation_and_a_routing_key() -> None:
    bodies = {p.name for p in SAMPLES.glob("*.json")} - {"webhook_test.json", "listevents_row.json"}
    assert bodies == set(EXPECTED) == set(ROUTING)


def test_samples_are_in_cloudstacks_wire_format() -> None:
    for name in EXPECTED:
        raw = _raw(name).removeprefix(b"\xef\xbb\xbf")
        body = json.loads(raw)
        assert all(isinstance(v, str) for v in body.values()), name
        # Gson writes compact, HTML-safe JSON: re-serialising gives the same bytes.
        assert native.gson_dumps(body) == raw, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_amqp(name: str) -> None:
    type_, subject, fields = EXPECTED[name]
    event = _parse(NativeMessage(_raw(name), "amqp", routing_key=ROUTING[name]))
    assert event.type == type_
    assert event.subject == subject
    assert event.source == SOURCE
    assert subject_for(event) == "csfabric." + type_
    for key, value in fields.items():
        assert event.data[key] == value, key
    body = json.loads(_raw(name).removeprefix(b"\xef\xbb\xbf"))
    assert event.data["native"] == body  # unchanged, escapes decoded as JSON does
    assert event.time is not None
    assert event.time.utcoffset() == native.parse_event_datetime(body["eventDateTime"]).utcoffset()
    assert parse_event(event.to_json()) == event  # a valid CloudEvent on the wire


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_kafka_gives_the_amqp_identity(name: str) -> None:
    amqp = _parse(NativeMessage(_raw(name), "amqp", routing_key=ROUTING[name]))
    key = amqp.subject.encode() if amqp.subject and amqp.data["category"] != "alert" else None
    kafka = _parse(NativeMessage(_raw(name), "kafka", kafka_key=key))
    assert kafka.id == amqp.id
    assert kafka.subject == amqp.subject
    assert kafka.data["category"] == amqp.data["category"]
    if amqp.data["category"] == "state":
        # No FSM event name outside the routing key: the documented fallback token.
        resource = amqp.data["resource"]
        assert kafka.type == f"cloudstack.state.{resource}.Transition"
        assert kafka.data["fsmEvent"] is None
    else:
        assert kafka.type == amqp.type


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n.startswith("action_")))
def test_webhook_gives_the_amqp_identity_and_keeps_the_event_row_id(name: str) -> None:
    amqp = _parse(NativeMessage(_raw(name), "amqp", routing_key=ROUTING[name]))
    row_id = "2e2e2e2e-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
    headers = {
        "x-cs-event-id": row_id,  # any case: HTTP header names are case-insensitive
        "X-CS-Event": amqp.data["event"],
        "User-Agent": "CS-Hookshot/ace0fba5-4444-4444-8444-444444444444",
    }
    hook = _parse(NativeMessage(_raw(name), "webhook", headers=headers))
    assert hook.id == amqp.id
    assert hook.type == amqp.type
    assert hook.extensions["cseventid"] == row_id
    assert "cseventid" not in amqp.extensions


def test_webhook_test_delivery_is_not_an_event() -> None:
    msg = NativeMessage(
        _raw("webhook_test.json"), "webhook", headers={"X-CS-Event": "TEST.WEBHOOK"}
    )
    assert parse_native(msg, source=SOURCE) is None


@pytest.mark.parametrize(
    "name", ["usage_vm_create.json", "alert_compute_host.json", "state_vm_pre.json"]
)
def test_webhooks_carry_action_events_only(name: str) -> None:
    with pytest.raises(EnvelopeError, match="webhooks carry action events only"):
        parse_native(NativeMessage(_raw(name), "webhook"), source=SOURCE)


def test_vm_pre_and_post_state_events_are_two_events() -> None:
    pre = _parse(NativeMessage(_raw("state_vm_pre.json"), "amqp", ROUTING["state_vm_pre.json"]))
    post = _parse(NativeMessage(_raw("state_vm_post.json"), "amqp", ROUTING["state_vm_post.json"]))
    assert pre.id != post.id


def test_byte_identical_volume_state_copies_are_one_event() -> None:
    raw = _raw("state_volume.json")
    first = _parse(NativeMessage(raw, "amqp", ROUTING["state_volume.json"]))
    second = _parse(NativeMessage(bytes(raw), "amqp", ROUTING["state_volume.json"]))
    assert first.id == second.id


def test_the_bom_does_not_change_the_identity() -> None:
    plain = _parse(NativeMessage(_raw("action_vm_create_completed.json"), "kafka"))
    bom = _parse(NativeMessage(_raw("action_vm_create_completed_bom.json"), "kafka"))
    assert plain.id == bom.id


def test_list_events_row() -> None:
    row = json.loads(_raw("listevents_row.json"))
    event = parse_list_events_row(row, source=SOURCE)
    assert event.type == "cloudstack.action.SNAPSHOT.CREATE"
    assert event.subject == SNAP
    assert event.extensions["cseventid"] == row["id"]
    assert event.data["status"] == "Completed"
    assert event.data["failed"] is True
    assert event.data["entity"] == "Snapshot"
    assert event.data["native"] == row
    assert event.time == datetime(2024, 11, 28, 8, 15, tzinfo=UTC)
    assert parse_list_events_row(row, source=SOURCE).id == event.id  # stable per row


def test_the_golden_list_events_rows_parse() -> None:
    golden = json.loads((SAMPLES.parent / "golden" / "listEvents.json").read_text())
    for row in golden["response"]["listeventsresponse"]["event"]:
        event = parse_list_events_row(row, source=SOURCE)
        assert event.type == f"cloudstack.action.{row['type']}"


# The builders the simulator uses must produce the same shape as the hand-written samples.
_TZ = timezone(timedelta(hours=1))
_WHEN = datetime(2024, 11, 28, 8, 15, tzinfo=UTC)


def _builder_samples() -> dict[str, native.NativeEvent]:
    action = native.action_event(
        "VM.CREATE",
        "Completed",
        "Successfully completed starting Vm. Vm Id: x",
        user="u",
        account="a",
        entity="VirtualMachine",
        entity_uuid=VM,
        when=_WHEN,
        tz=_TZ,
    )
    usage = native.usage_event(
        "VM.CREATE",
        zone=ZONE,
        resource_class="com.cloud.vm.VirtualMachine",
        resource_uuid=VM,
        account="a",
        when=_WHEN,
        tz=_TZ,
    )
    alert = native.alert_event(
        "ALERT.COMPUTE.HOST",
        zone_uuid=ZONE,
        pod_uuid="p",
        subject="Host is down",
        body="down",
        when=_WHEN,
        tz=_TZ,
    )
    state = native.state_event(
        "VirtualMachine",
        VM,
        "StopRequested",
        "Running",
        "Stopping",
        when=_WHEN,
        tz=_TZ,
        status="preStateTransitionEvent",
    )
    return {
        "action_vm_create_completed.json": action,
        "usage_vm_create.json": usage,
        "alert_compute_host.json": alert,
        "state_vm_pre.json": state,
    }


@pytest.mark.parametrize("name", sorted(_builder_samples()))
def test_builders_match_the_hand_written_samples(name: str) -> None:
    built = _builder_samples()[name]
    assert set(built.body) == set(json.loads(_raw(name)))
    amqp = _parse(NativeMessage(built.body_json(), "amqp", routing_key=built.routing_key()))
    hand = _parse(NativeMessage(_raw(name), "amqp", routing_key=ROUTING[name]))
    assert amqp.type == hand.type
    assert set(amqp.data) == set(hand.data)
    assert amqp.id == event_identity(amqp.data["category"], built.body)
