"""What ``csfabric events tail`` shows for a message, and which streams a pattern reaches."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from csfabric.cli._eventline import describe
from csfabric.cli.events import check_pattern, intersect, plan_tail, render
from hypothesis import given
from hypothesis import strategies as st


def _event(type_: str, data: object, **extra: object) -> bytes:
    body = {"specversion": "1.0", "id": "1", "source": "cs", "type": type_, "data": data}
    return json.dumps(body | extra).encode()


@pytest.mark.parametrize(
    ("type_", "data", "summary"),
    [
        (
            "cloudstack.action.VM.CREATE",
            {"event": "VM.CREATE", "status": "Completed", "entityuuid": "u-1", "user": "uid"},
            "VM.CREATE Completed u-1 by uid",
        ),
        # No entity uuid in the data: the CloudEvent's subject stands in.
        ("cloudstack.action.VM.DESTROY", {"event": "VM.DESTROY"}, "VM.DESTROY env-1"),
        (
            "cloudstack.usage.VM.CREATE",
            {"event": "VM.CREATE", "resource": "VirtualMachine", "id": "u-2", "account": "a"},
            "VM.CREATE VirtualMachine u-2 account a",
        ),
        (
            "cloudstack.alert.ALERT.COMPUTE.HOST",
            {"event": "ALERT.COMPUTE.HOST", "dataCenterId": "z-1", "subject": "host down"},
            "ALERT.COMPUTE.HOST zone z-1: host down",
        ),
        (
            "cloudstack.state.VirtualMachine.StartRequested",
            {
                "resource": "VirtualMachine",
                "id": "u-3",
                "old-state": "Stopped",
                "new-state": "Starting",
            },
            "VirtualMachine u-3 Stopped → Starting",
        ),
        ("environment.created", {"name": "dev-42"}, 'env-1 {"name":"dev-42"}'),
        ("cloudstack.action.X", ["not", "a", "dict"], 'env-1 ["not", "a", "dict"]'),
    ],
)
def test_cloudevents_get_a_one_line_summary(type_: str, data: object, summary: str) -> None:
    line = describe("csfabric.x", _event(type_, data, subject="env-1"))
    assert line.type == type_
    assert line.summary == summary


def test_time_and_trace_come_from_the_event() -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    payload = _event(
        "a.b", {}, time="2026-01-02T03:04:05Z", traceparent=f"00-{trace}-b7ad6b7169203331-01"
    )
    line = describe("csfabric.lifecycle.a.b", payload, stream="S", seq=7)
    assert line.trace_id == trace
    assert line.time == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (line.stream, line.seq) == ("S", 7)
    assert "subject=" not in render(line)  # the subject is csfabric.<type>
    assert render(line).endswith(f"trace={trace}")


def test_a_bad_traceparent_or_time_is_left_out_not_fatal() -> None:
    stored = datetime(2026, 5, 5, tzinfo=UTC)
    payload = _event("a.b", {}, time="yesterday", traceparent="nope")
    line = describe("csfabric.lifecycle.a.b", payload, stored=stored)
    assert line.trace_id is None
    assert line.time == stored


def test_secrets_and_terminal_escapes_never_reach_the_line() -> None:
    data = {"event": "USER.LOGIN", "status": "\x1b[31mCompleted", "user": "apikey=XYZ"}
    line = describe("s", _event("cloudstack.action.USER.LOGIN", data))
    assert "XYZ" not in line.summary
    assert "\x1b" not in line.summary
    assert "\\x1b[31mCompleted" in line.summary


def test_a_huge_payload_is_cut() -> None:
    line = describe("s", b"x" * 1_000_000)
    assert len(line.summary) < 300
    assert line.summary.endswith("more characters)")


@given(
    subject=st.sampled_from(["csfabric.audit.x", "csfabric.dlq.x", "csfabric.cloudstack.a"]),
    payload=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"specversion": st.just("1.0"), "type": st.text(max_size=30)},
            optional={
                "data": st.dictionaries(st.text(max_size=10), st.text(max_size=10) | st.integers()),
                "time": st.text(max_size=30),
                "traceparent": st.text(max_size=60),
            },
        ).map(lambda v: json.dumps(v).encode()),
    ),
    headers=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["Csfabric-Dlq-Service", "Csfabric-Dlq-Time", "X"]),
            st.text(max_size=20),
        ),
    ),
)
def test_describe_never_raises_and_is_one_line(
    subject: str, payload: bytes, headers: dict[str, str] | None
) -> None:
    line = describe(subject, payload, headers)
    assert "\n" not in line.summary
    assert "\n" not in render(line)
    json.dumps(line.to_json(), ensure_ascii=False)


@pytest.mark.parametrize(
    ("a", "b", "both"),
    [
        ("csfabric.>", "csfabric.cloudstack.>", "csfabric.cloudstack.>"),
        (
            "csfabric.cloudstack.action.VM.>",
            "csfabric.cloudstack.>",
            "csfabric.cloudstack.action.VM.>",
        ),
        ("csfabric.*.action.>", "csfabric.cloudstack.>", "csfabric.cloudstack.action.>"),
        ("csfabric.audit.x", "csfabric.audit.>", "csfabric.audit.x"),
        ("csfabric.audit", "csfabric.audit.>", None),
        ("csfabric.dlq.>", "csfabric.audit.>", None),
        ("a.*", "a.b", "a.b"),
        ("a.*", "a.b.c", None),
    ],
)
def test_intersect(a: str, b: str, both: str | None) -> None:
    assert intersect(a, b) == both
    assert intersect(b, a) == both


def test_the_default_pattern_tails_the_backbone_not_replays_or_policy_history() -> None:
    streams = {stream for stream, _ in plan_tail("csfabric.>")}
    assert streams == {"CSFABRIC_EVENTS", "CSFABRIC_ALERTS", "CSFABRIC_AUDIT", "CSFABRIC_CONTROL",
                       "CSFABRIC_DLQ"}  # fmt: skip
    assert plan_tail("csfabric.replay.r1.>") == [("CSFABRIC_REPLAY", "csfabric.replay.r1.>")]
    assert plan_tail("csfabric.cloudstack.action.*") == [
        ("CSFABRIC_EVENTS", "csfabric.cloudstack.action.*")
    ]
    assert plan_tail("other.>") == []


@pytest.mark.parametrize("bad", ["", "a..b", "a.>.b", "a b", "a.b*"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="bad subject pattern"):
        check_pattern(bad)
