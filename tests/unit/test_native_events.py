"""CloudStack's native event formats: routing keys, Gson bodies, timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from csfabric.cloudstack._native import (
    NativeEvent,
    action_event,
    alert_event,
    format_event_datetime,
    gson_dumps,
    parse_event_datetime,
    routing_key_part,
    state_event,
    usage_event,
)
from hypothesis import given
from hypothesis import strategies as st

WHEN = datetime(2024, 11, 28, 8, 15, 0, tzinfo=UTC)
CET = ZoneInfo("Europe/Paris")
VM = "8a2f8b4c-1111-4222-8333-944455556666"
USER = "11111111-aaaa-4bbb-8ccc-000000000001"
ACCOUNT = "22222222-aaaa-4bbb-8ccc-000000000002"
ZONE = "33333333-aaaa-4bbb-8ccc-000000000003"


def _deploy(status: str = "Completed", **kw: object) -> NativeEvent:
    args: dict[str, object] = {
        "user": USER,
        "account": ACCOUNT,
        "entity": "VirtualMachine",
        "entity_uuid": VM,
        "when": WHEN,
        "tz": CET,
    }
    args.update(kw)
    return action_event("VM.CREATE", status, "deploying Vm", **args)  # type: ignore[arg-type]


def test_action_event_routing_key_and_body() -> None:
    event = _deploy(related={"DataCenter": ZONE})
    assert event.routing_key() == f"management-server.ActionEvent.VM-CREATE.VirtualMachine.{VM}"
    body = json.loads(event.body_json())
    assert body == {
        "user": USER,
        "account": ACCOUNT,
        "event": "VM.CREATE",
        "status": "Completed",
        "entity": "VirtualMachine",
        "entityuuid": VM,
        "DataCenter": ZONE,
        "description": "deploying Vm",
        "eventDateTime": "2024-11-28 09:15:00 +0100",
    }
    assert event.account_uuid == ACCOUNT
    assert event.kafka_key == VM.encode()
    raw = event.body_json()
    assert raw.startswith(b'{"user":"')
    assert b'", "' not in raw
    assert b'": "' not in raw


def test_null_keys_are_omitted() -> None:
    event = _deploy(entity=None, entity_uuid=None)
    body = json.loads(event.body_json())
    assert not {"entity", "entityuuid", "project"} & body.keys()
    assert event.routing_key() == "management-server.ActionEvent.VM-CREATE.*.*"
    assert event.kafka_key is None


def test_project_key_present_for_project_resources() -> None:
    body = json.loads(_deploy(project="p-uuid").body_json())
    assert body["project"] == "p-uuid"


def test_unknown_status_rejected() -> None:
    with pytest.raises(ValueError, match="unknown action event status"):
        _deploy(status="Failed")


def test_usage_event() -> None:
    event = usage_event(
        "VM.CREATE",
        zone=ZONE,
        resource_class="com.cloud.vm.VirtualMachine",
        resource_uuid=VM,
        account=ACCOUNT,
        when=WHEN,
        tz=UTC,
    )
    assert event.routing_key() == (
        f"management-server.UsageEvent.VM-CREATE.com-cloud-vm-VirtualMachine.{VM}"
    )
    assert json.loads(event.body_json()) == {
        "event": "VM.CREATE",
        "zone": ZONE,
        "resource": "com.cloud.vm.VirtualMachine",
        "id": VM,
        "account": ACCOUNT,
        "eventDateTime": "2024-11-28 08:15:00 +0000",
    }


def test_alert_event_has_no_resource() -> None:
    event = alert_event(
        "ALERT.COMPUTE.HOST",
        zone_uuid=ZONE,
        pod_uuid=None,
        subject="Host is down, name: kvm-01 (id:3)",
        body="",
        when=WHEN,
        tz=UTC,
    )
    assert event.routing_key() == "management-server.AlertEvent.ALERT-COMPUTE-HOST.*.*"
    body = json.loads(event.body_json())
    assert body["dataCenterId"] == ZONE
    assert "podId" not in body
    assert body["body"] == ""  # empty is not null: Gson keeps it
    assert event.kafka_key is None


def test_state_events_pre_and_post_for_vms() -> None:
    pre, post = (
        state_event(
            "VirtualMachine",
            VM,
            "OperationSucceeded",
            "Starting",
            "Running",
            when=WHEN,
            tz=UTC,
            status=status,
        )
        for status in ("preStateTransitionEvent", "postStateTransitionEvent")
    )
    assert pre.routing_key() == post.routing_key()
    assert pre.routing_key() == (
        f"management-server.ResourceStateEvent.OperationSucceeded.VirtualMachine.{VM}"
    )
    assert json.loads(pre.body_json())["status"] == "preStateTransitionEvent"
    assert json.loads(post.body_json()) == {
        "resource": "VirtualMachine",
        "id": VM,
        "old-state": "Starting",
        "new-state": "Running",
        "status": "postStateTransitionEvent",
        "eventDateTime": "2024-11-28 08:15:00 +0000",
    }


def test_volume_state_events_can_be_byte_identical() -> None:
    a, b = (
        state_event("Volume", VM, "CreateRequested", "Allocated", "Creating", when=WHEN, tz=UTC)
        for _ in range(2)
    )
    assert "status" not in json.loads(a.body_json())
    assert a.body_json() == b.body_json()
    assert a.event_id != b.event_id


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("VM.CREATE", "VM-CREATE"),
        ("com.cloud.vm.VirtualMachine", "com-cloud-vm-VirtualMachine"),
        ("", "*"),
        (None, "*"),
        ("plain", "plain"),
    ],
)
def test_routing_key_part(part: str | None, expected: str) -> None:
    assert routing_key_part(part) == expected


def test_gson_escaping() -> None:
    raw = gson_dumps({"d": "<a href='x'>&b=c</a>", "q": 'say "hi"\n\\', "u": "café\u2028"})
    assert raw == (
        b'{"d":"\\u003ca href\\u003d\\u0027x\\u0027\\u003e\\u0026b\\u003dc\\u003c/a\\u003e",'
        b'"q":"say \\"hi\\"\\n\\\\","u":"caf\xc3\xa9\\u2028"}'
    )
    assert json.loads(raw)["d"] == "<a href='x'>&b=c</a>"


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        (UTC, "2024-11-28 08:15:00 +0000"),
        (CET, "2024-11-28 09:15:00 +0100"),
        (ZoneInfo("America/New_York"), "2024-11-28 03:15:00 -0500"),
        (ZoneInfo("Asia/Kolkata"), "2024-11-28 13:45:00 +0530"),
        (timezone(timedelta(hours=-3, minutes=-30)), "2024-11-28 04:45:00 -0330"),
    ],
)
def test_event_datetime(tz: timezone, expected: str) -> None:
    assert format_event_datetime(WHEN, tz) == expected
    assert parse_event_datetime(expected) == WHEN


def test_event_datetime_summer_time_and_naive() -> None:
    summer = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)
    assert format_event_datetime(summer, CET) == "2024-07-01 14:00:00 +0200"
    assert format_event_datetime(summer.replace(tzinfo=None), UTC) == "2024-07-01 12:00:00 +0000"


@given(st.dictionaries(st.text(), st.text()))
def test_body_json_always_parses_back(body: dict[str, str]) -> None:
    raw = gson_dumps(body)
    raw.decode("utf-8")  # valid UTF-8 even for lone surrogates
    parsed = json.loads(raw)
    assert parsed == body
    assert all(isinstance(v, str) for v in parsed.values())
    for ch in "<>&='":
        assert ch.encode() not in raw


@given(
    st.text(min_size=1),
    st.one_of(st.none(), st.text()),
    st.one_of(st.none(), st.text()),
)
def test_routing_key_always_has_five_words(event: str, rtype: str | None, rid: str | None) -> None:
    ev = NativeEvent("ActionEvent", event, rtype, rid, {})
    words = ev.routing_key().split(".")
    assert len(words) == 5
    assert all(words)
