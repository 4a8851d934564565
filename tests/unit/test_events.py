"""Typed payloads: whatever ingest accepts fits its model and round-trips; handlers get models.

Properties (Hypothesis) over CloudStack bodies built by the native encoders, with keys a
newer release might add, and over lifecycle payloads; then the ``typed`` adapter: a payload
that fits reaches the handler as its model, one that does not is a ``PermanentError`` (the
consumer's dead-letter verdict) whose reason names the field.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from csfabric.cloudstack import NativeMessage, parse_native
from csfabric.cloudstack import _native as native
from csfabric.events import (
    LIFECYCLE,
    ActionEventData,
    DrDrillRequested,
    EnvironmentCreated,
    EnvironmentExtended,
    MaintenanceScheduled,
    PayloadError,
    TypedEvent,
    dataschema,
    parse_as,
    parse_dataschema,
    payload,
    typed,
)
from csfabric.kernel import CloudEvent, PermanentError, make_event, parse_event
from csfabric.kernel.bus import Delivery
from csfabric.kernel.bus._delivery import Verdict, verdict
from hypothesis import given, settings
from hypothesis import strategies as st

_name = st.from_regex(r"\A[A-Z]{1,8}(\.[A-Z]{1,8}){0,2}\Z")
_uuid = st.uuids().map(str)
_free = st.text(max_size=30).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s))
_when = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_tz = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# Keys a later CloudStack release might add: kept in `native`, never an error.
_extra = st.dictionaries(st.from_regex(r"\A[a-z][A-Za-z]{2,12}\Z"), _free, max_size=3)


@st.composite
def _body(draw: st.DrawFn) -> native.NativeEvent:
    when, tz = draw(_when), draw(_tz)
    kind = draw(st.sampled_from(["action", "usage", "alert", "state"]))
    if kind == "action":
        return native.action_event(
            draw(_name),
            draw(st.sampled_from(native.ACTION_STATUSES)),
            draw(st.sampled_from(["Successfully completed", "Error while creating"]) | _free),
            user=draw(_uuid),
            account=draw(_uuid),
            entity=draw(st.none() | st.sampled_from(["VirtualMachine", "com.cloud.vm.Snapshot"])),
            entity_uuid=draw(st.none() | _uuid),
            when=when,
            tz=tz,
            project=draw(st.none() | _uuid),
            related={"DataCenter": draw(_uuid)} | draw(_extra),
        )
    if kind == "usage":
        return native.usage_event(
            draw(_name),
            zone=draw(st.none() | _uuid),
            resource_class=draw(st.sampled_from(["com.cloud.vm.VirtualMachine", "Volume"])),
            resource_uuid=draw(_uuid),
            account=draw(_uuid),
            when=when,
            tz=tz,
            extra=draw(_extra),
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
        draw(st.sampled_from(["Running", "Stopping"])),
        draw(st.sampled_from(["Stopped", "Ready"])),
        when=when,
        tz=tz,
        status=draw(
            st.none() | st.sampled_from(["preStateTransitionEvent", "postStateTransitionEvent"])
        ),
    )


@settings(max_examples=300)
@given(_body(), st.sampled_from(["amqp", "kafka"]))
def test_what_ingest_accepts_fits_its_model_and_round_trips(
    built: native.NativeEvent, transport: str
) -> None:
    key = built.routing_key() if transport == "amqp" else None
    event = parse_native(NativeMessage(built.body_json(), transport, key), source="t")  # type: ignore[arg-type]
    assert event is not None
    wire = parse_event(event.to_json())
    typed_data = payload(wire)
    assert typed_data.native == built.body
    assert typed_data.to_data() == wire.data == event.data
    assert wire.dataschema == type(typed_data).dataschema()
    again = type(typed_data).model_validate_json(json.dumps(typed_data.to_data()))
    assert again == typed_data


_env = st.from_regex(r"\A[a-z][a-z0-9\-]{0,20}\Z")
_aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=_tz
).map(lambda d: d.replace(microsecond=0))
_lifecycle: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "environment.created": st.fixed_dictionaries(
        {"name": _env},
        optional={
            "ttl": st.sampled_from(["4h", "30m", "7d", "PT2H", "1h30m"]),
            "project": _uuid,
            "owner": _free,
            "labels": st.dictionaries(_env, _free, max_size=2),
            "pipeline": _free,  # a publisher's own key: kept
        },
    ),
    "environment.extended": st.fixed_dictionaries(
        {"name": _env}, optional={"reason": _free}
    ).flatmap(
        lambda d: st.one_of(
            st.just(d | {"ttl": "2h"}), _aware.map(lambda t: d | {"expiresAt": t.isoformat()})
        )
    ),
    "environment.released": st.fixed_dictionaries({"name": _env}, optional={"reason": _free}),
    "maintenance.scheduled": st.tuples(_aware, st.integers(1, 10_000)).map(
        lambda p: {
            "id": "mw-1",
            "start": p[0].isoformat(),
            "end": (p[0] + timedelta(minutes=p[1])).isoformat(),
            "zones": ["zone-leeds"],
        }
    ),
    "maintenance.started": st.fixed_dictionaries(
        {"id": _env}, optional={"end": _aware.map(datetime.isoformat)}
    ),
    "maintenance.ended": st.fixed_dictionaries({"id": _env}),
    "dr.drill.requested": st.fixed_dictionaries(
        {"zone": _env}, optional={"cleanup": st.booleans(), "requestedBy": _free}
    ),
}


def test_the_lifecycle_strategies_cover_the_catalogue() -> None:
    assert set(_lifecycle) == set(LIFECYCLE)


@settings(max_examples=200)
@given(st.sampled_from(sorted(_lifecycle)).flatmap(lambda t: st.tuples(st.just(t), _lifecycle[t])))
def test_lifecycle_payloads_round_trip(case: tuple[str, dict[str, Any]]) -> None:
    type_, data = case
    model = LIFECYCLE[type_]
    event = make_event(
        type=type_, source="ci", id="e1", subject="x", data=data, dataschema=model.dataschema()
    )
    typed_data = payload(parse_event(event.to_json()))
    assert type(typed_data) is model
    assert model.model_validate(typed_data.to_data()) == typed_data == model.model_validate(data)
    # Written back as given, but a duration in its compact form (PT2H → 2h).
    compact = {"PT2H": "2h"}
    assert typed_data.to_data() == data | (
        {"ttl": compact.get(data["ttl"], data["ttl"])} if "ttl" in data else {}
    )


JAN1, JAN2, JAN3 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (EnvironmentCreated, {"name": "ci-1", "ttl": "4h", "expiresAt": JAN1}, None),
        (EnvironmentCreated, {"name": "ci-1", "ttl": "soon"}, "ttl"),
        (EnvironmentCreated, {"name": "../etc", "ttl": "4h"}, "name"),
        (EnvironmentExtended, {"name": "ci-1"}, None),
        (MaintenanceScheduled, {"id": "m", "start": JAN2, "end": JAN1}, None),
        (MaintenanceScheduled, {"id": "m", "start": JAN2[:-1], "end": JAN3}, "start"),
        (DrDrillRequested, {"cleanup": True}, "zone"),
    ],
)
def test_lifecycle_payloads_that_do_not_fit(
    model: type[EnvironmentCreated], data: dict[str, Any], field: str | None
) -> None:
    event = make_event(type="environment.created", source="ci", id="e2", data=data)
    with pytest.raises(PayloadError) as caught:
        parse_as(model, event)
    assert caught.value.field == field
    assert model.schema_stem in caught.value.reason


def test_dataschema_names_stem_and_version() -> None:
    uri = dataschema("environment-created", 1)
    assert uri == "urn:csfabric:schema:environment-created:1"
    assert parse_dataschema(uri) == ("environment-created", 1)
    assert parse_dataschema("https://example.com/schema.json") is None
    assert parse_dataschema("urn:csfabric:schema:x:one") is None
    assert json.loads(json.dumps(EnvironmentCreated.model_json_schema()))["$id"] == uri


# -- the handler adapter -----------------------------------------------------------------------

DELIVERY = Delivery("csfabric.cloudstack.action.VM.CREATE", 1, "CSFABRIC_EVENTS", 7, {}, b"")


def _action(**changes: Any) -> CloudEvent:
    data = {
        "category": "action",
        "event": "VM.CREATE",
        "eventDateTime": "2024-11-28T09:15:41+01:00",
        "status": "Completed",
        "failed": False,
        "entityuuid": "6f1c7a0e-2b1d-4c3e-9f5a-1d2e3f4a5b6c",
        "native": {"event": "VM.CREATE"},
    } | changes
    return make_event(
        type="cloudstack.action.VM.CREATE",
        source="cloud",
        id="a1",
        data=data,
        dataschema=ActionEventData.dataschema(),
    )


async def test_a_typed_handler_gets_the_model() -> None:
    seen: list[TypedEvent[ActionEventData]] = []

    @typed(ActionEventData)
    async def handler(event: TypedEvent[ActionEventData], delivery: Delivery) -> None:
        seen.append(event)

    await handler(_action(), DELIVERY)
    (got,) = seen
    assert isinstance(got.data, ActionEventData)
    assert got.data.status == "Completed"
    assert got.data.failed is False
    assert got.data.event_time == datetime(2024, 11, 28, 8, 15, 41, tzinfo=UTC)
    assert (got.id, got.type, got.subject) == ("a1", "cloudstack.action.VM.CREATE", None)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"status": "Done"}, "status", ["'Done'", "Created"]),
        ({"failed": "perhaps"}, "failed", ["boolean"]),
        ({"eventDateTime": "2024-11-28 09:15:41"}, "eventDateTime", ["eventDateTime"]),
        ({"event": None}, "event", ["event"]),
    ],
)
async def test_data_that_does_not_fit_is_a_permanent_error_naming_the_field(
    changes: dict[str, Any], field: str, words: list[str]
) -> None:
    called = False

    @typed(ActionEventData)
    async def handler(event: TypedEvent[ActionEventData], delivery: Delivery) -> None:
        nonlocal called
        called = True

    with pytest.raises(PermanentError) as caught:
        await handler(_action(**changes), DELIVERY)
    error = caught.value
    assert isinstance(error, PayloadError)
    assert error.field == field
    assert "cloudstack-action v1" in str(error)
    assert "'a1'" in str(error)
    for word in words:
        assert word in str(error)
    assert not called
    assert verdict(error, 1, 5) is Verdict.DEAD_LETTER  # never retried


async def test_a_dataschema_naming_another_schema_is_refused() -> None:
    event = _action().model_copy(update={"dataschema": dataschema("cloudstack-usage", 1)})
    with pytest.raises(PayloadError) as caught:
        payload(event)
    assert caught.value.field == "dataschema"
    assert "cloudstack-usage" in caught.value.reason


def test_a_type_outside_the_catalogue_has_no_payload() -> None:
    event = make_event(type="cloudstack.asyncjob.X", source="cloud", id="x", data={})
    with pytest.raises(PayloadError, match="no payload model"):
        payload(event)


def test_unknown_keys_are_kept() -> None:
    typed_data = parse_as(ActionEventData, _action(newKey="4.23"))
    assert typed_data.model_extra == {"newKey": "4.23"}
    assert typed_data.to_data()["newKey"] == "4.23"


def test_a_later_version_or_a_foreign_dataschema_is_read_with_the_model_there_is() -> None:
    for uri in (dataschema("cloudstack-action", 2), "https://example.com/action.json"):
        event = _action(addedInV2="x").model_copy(update={"dataschema": uri})
        typed_data = payload(event)
        assert isinstance(typed_data, ActionEventData)
        assert typed_data.model_extra == {"addedInV2": "x"}
