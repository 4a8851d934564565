"""The policy store, its live watcher, the kill switch and audit records, each case in
memory and on nats-server."""

from __future__ import annotations

import json
from typing import Any

from csfabric.kernel import Auditor
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import ActionGate, PolicyWatcher
from csfabric.kernel.policy._model import PolicyDocument, parse_document
from csfabric.kernel.policy._store import PolicyStore
from nats.js.errors import NotFoundError

from tests.backbone import Backbone
from tests.integration._workload import eventually
from tests.policykinds import TEST_KIND, register_test_kinds

OPERATOR = "test:alice"


def doc(name: str = "nightly", **spec: Any) -> PolicyDocument:
    register_test_kinds()
    return parse_document(
        {"apiVersion": "csfabric/v1", "kind": TEST_KIND, "metadata": {"name": name}, "spec": spec}
    )


async def messages(bus: Bus, stream: str, subject: str = ">") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    seq = 1
    while True:
        try:
            msg = await bus.js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append(json.loads(msg.data or b"null"))
        seq = (msg.seq or seq) + 1


async def test_versions_history_audit_and_delete(bus: Bus) -> None:
    store = PolicyStore(bus)
    [first] = await store.apply([doc(action="snapshot")], OPERATOR)
    [again] = await store.apply([doc(action="snapshot")], OPERATOR)
    [second] = await store.apply([doc(action="rotate")], OPERATOR)
    assert [(c.change, c.version) for c in (first, again, second)] == [
        ("created", 1),
        ("unchanged", 1),
        ("updated", 2),
    ]
    old = await store.get(TEST_KIND, "nightly", version=1)
    assert old is not None
    assert old.document["spec"]["action"] == "snapshot"
    assert [p.key for p in await store.list()] == [f"{TEST_KIND}.nightly"]
    await store.delete(TEST_KIND, "nightly", OPERATOR)
    assert await store.get(TEST_KIND, "nightly") is None
    assert await store.list() == []
    [recreated] = await store.apply([doc(action="snapshot")], OPERATOR)
    assert (recreated.change, recreated.version) == ("created", 3), "history continues"

    audit = await messages(bus, "CSFABRIC_AUDIT")
    assert [(r["decision"], r["outcome"], r.get("policy_version")) for r in audit] == [
        ("apply", "success", 1),
        ("apply", "skipped", 1),
        ("apply", "success", 2),
        ("delete", "success", 2),
        ("apply", "success", 3),
    ]
    control = await messages(bus, "CSFABRIC_CONTROL")
    assert [e["type"] for e in control] == [
        "control.apply",
        "control.apply",
        "control.delete",
        "control.apply",
    ]


async def test_a_running_watcher_sees_apply_pause_and_the_kill_switch(backbone: Backbone) -> None:
    operator_bus = await backbone.bus("cli")
    service_bus = await backbone.bus("actor", create_streams=False)
    store = PolicyStore(operator_bus)
    await store.apply([doc("live", action="snapshot")], OPERATOR)
    watcher = PolicyWatcher(service_bus)
    gate = ActionGate(watcher)
    await watcher.start()
    try:
        current = watcher.get(TEST_KIND, "live")
        assert current is not None
        assert current.version == 1  # loaded before start() returned
        assert (await gate.check(TEST_KIND, "live")).allowed

        await store.apply([doc("live", action="rotate")], OPERATOR)
        await eventually(
            lambda: (p := watcher.get(TEST_KIND, "live")) is not None and p.version == 2,
            within=5,
            what="version 2 seen",
        )
        await store.set_paused(TEST_KIND, "live", True, OPERATOR)
        await eventually(lambda: _refused(gate, "live"), within=5, what="paused policy refused")
        await store.set_paused(TEST_KIND, "live", False, OPERATOR)
        await store.pause_all(OPERATOR)
        await eventually(lambda: watcher.global_paused, within=5, what="kill switch seen")
        assert not (await gate.check(TEST_KIND, "live")).allowed
        await store.resume_all(OPERATOR)
        await store.delete(TEST_KIND, "live", OPERATOR)
        await eventually(
            lambda: watcher.get(TEST_KIND, "live") is None and not watcher.global_paused,
            within=5,
            what="deleted and resumed",
        )
    finally:
        await watcher.stop()


async def _refused(gate: ActionGate, name: str) -> bool:
    return not (await gate.check(TEST_KIND, name)).allowed


async def test_an_audit_record_is_published_once_per_action_key(bus: Bus) -> None:
    auditor = Auditor(bus)
    for _ in range(2):  # a redelivered event makes the same record
        record = await auditor.emit(
            action_key="svc:event-1:snapshot",
            decision="snapshot",
            reason="nightly policy matched vm-1",
            input_event_ids=["event-1"],
            outcome="success",
        )
    [stored] = await messages(bus, "CSFABRIC_AUDIT", "csfabric.audit.test")
    assert stored["id"] == record.id
    assert (stored["service"], stored["decision"], stored["input_event_ids"]) == (
        "test",
        "snapshot",
        ["event-1"],
    )
