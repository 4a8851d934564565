"""Every real-format sample and golden row, parsed on every feed, fits its events model.

The models in ``csfabric.events`` are the contract of ``data``: what ingest writes must
validate into them, say which schema it follows (``dataschema``), and come back out of
them byte for byte, so a handler that reads the model sees exactly what was stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from csfabric.cloudstack import NativeMessage, parse_list_events_row, parse_native
from csfabric.cloudstack import _native as native
from csfabric.events import (
    FAMILIES,
    ActionEventData,
    AlertEventData,
    Payload,
    StateEventData,
    UsageEventData,
    dataschema,
    model_for,
    payload,
)
from csfabric.kernel import CloudEvent, parse_event
from hypothesis import given
from hypothesis import strategies as st

HERE = Path(__file__).parent
SAMPLES = HERE / "samples"
ROUTING = {
    name: key
    for name, key in (
        line.split()
        for line in (SAMPLES / "routing_keys.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
}
MODEL_OF_PREFIX: dict[str, type[Payload]] = {
    "action_": ActionEventData,
    "usage_": UsageEventData,
    "alert_": AlertEventData,
    "state_": StateEventData,
}


def _model(name: str) -> type[Payload]:
    return next(m for prefix, m in MODEL_OF_PREFIX.items() if name.startswith(prefix))


def _feeds(name: str) -> list[NativeMessage]:
    raw = (SAMPLES / name).read_bytes()
    msgs = [NativeMessage(raw, "amqp", routing_key=ROUTING[name]), NativeMessage(raw, "kafka")]
    if name.startswith("action_"):
        msgs.append(NativeMessage(raw, "webhook", headers={"X-CS-Event-ID": "0d1f"}))
    return msgs


def assert_fits(event: CloudEvent, model: type[Payload]) -> Payload:
    """``event.data`` is ``model``, names its schema, and survives the bus and the model."""
    typed = payload(event)
    assert type(typed) is model
    assert event.dataschema == model.dataschema() == dataschema(model.schema_stem, 1)
    assert typed.to_data() == event.data  # the model writes back what ingest wrote
    assert json.dumps(typed.to_data(), sort_keys=True) == json.dumps(event.data, sort_keys=True)
    wire = parse_event(event.to_json())  # what a consumer decodes off the stream
    assert payload(wire) == typed
    return typed


@pytest.mark.parametrize("name", sorted(ROUTING))
def test_every_sample_fits_its_model_on_every_feed(name: str) -> None:
    for msg in _feeds(name):
        event = parse_native(msg, source="cloud-test")
        assert event is not None
        typed = assert_fits(event, _model(name))
        assert typed.native == json.loads((SAMPLES / name).read_bytes().decode("utf-8-sig"))


_new_keys = st.dictionaries(
    st.from_regex(r"\A[a-z][A-Za-z]{2,12}\Z").filter(lambda k: k not in _KNOWN),
    st.text(max_size=20).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)),
    max_size=4,
)
# Keys of some family: adding one may change the inferred family or a typed field.
_KNOWN = {
    *("status", "event", "resource", "entity", "entityuuid", "description", "eventDateTime"),
    *("subject", "body", "zone", "dataCenterId", "podId", "user", "account", "project"),
}


@given(st.sampled_from(sorted(ROUTING)), _new_keys, st.sampled_from(["amqp", "kafka"]))
def test_a_sample_with_keys_a_newer_release_adds_still_fits_and_round_trips(
    name: str, added: dict[str, str], transport: str
) -> None:
    body = json.loads((SAMPLES / name).read_bytes().decode("utf-8-sig"))
    body |= {k: v for k, v in added.items() if k not in body}
    key = ROUTING[name] if transport == "amqp" else None
    event = parse_native(NativeMessage(native.gson_dumps(body), transport, key), source="c")  # type: ignore[arg-type]
    assert event is not None
    typed = assert_fits(event, _model(name))
    assert typed.native == body


def test_the_models_read_the_samples_typed() -> None:
    def parsed(name: str) -> Payload:
        event = parse_native(
            NativeMessage((SAMPLES / name).read_bytes(), "amqp", routing_key=ROUTING[name]),
            source="cloud-test",
        )
        assert event is not None
        return payload(event)

    failed = parsed("action_snapshot_create_failed.json")
    assert isinstance(failed, ActionEventData)
    assert (failed.status, failed.failed, failed.entity) == ("Completed", True, "Snapshot")
    assert failed.event_time.utcoffset() is not None
    legacy = parsed("action_volume_create_legacy.json")
    assert isinstance(legacy, ActionEventData)
    assert legacy.entity == "Volume"
    usage = parsed("usage_vm_create.json")
    assert isinstance(usage, UsageEventData)
    assert usage.resource == "VirtualMachine"
    alert = parsed("alert_compute_host.json")
    assert isinstance(alert, AlertEventData)
    assert alert.data_center_id == alert.native["dataCenterId"]
    state = parsed("state_vm_pre.json")
    assert isinstance(state, StateEventData)
    assert (state.old_state, state.new_state) == ("Running", "Stopping")
    assert (state.status, state.fsm_event) == ("preStateTransitionEvent", "StopRequested")


def _golden_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((SAMPLES / "listevents_row.json").read_text())
    rows = rows if isinstance(rows, list) else [rows]
    answer = json.loads((HERE / "golden" / "listEvents.json").read_text())
    return rows + list(answer["response"]["listeventsresponse"]["event"])


def test_every_listevents_row_fits_the_action_model() -> None:
    rows = _golden_rows()
    assert len(rows) >= 2  # the sample row and the golden answer's
    for row in rows:
        typed = assert_fits(parse_list_events_row(row, source="cloud-test"), ActionEventData)
        assert isinstance(typed, ActionEventData)
        assert typed.native == row  # names, booleans and all: the row as the API gave it
        assert typed.event == row["type"]


def test_the_catalogue_maps_every_family_and_nothing_else() -> None:
    for family, model in FAMILIES.items():
        assert model_for(f"cloudstack.{family}.ANY.THING") is model
    assert model_for("cloudstack.action") is None
    assert model_for("cloudstack.asyncjob.X") is None
    assert model_for("something.else") is None
