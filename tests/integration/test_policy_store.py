"""The policy store on a real nats-server: versions, history, all-or-nothing, live changes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from csfabric.devstack._natsserver import NatsServerProcess
from csfabric.kernel.bus import Bus
from csfabric.kernel.policy import (
    ActionGate,
    PolicyConflictError,
    PolicyLoadError,
    PolicyWatcher,
    load_policies,
)
from csfabric.kernel.policy._model import PolicyDocument, parse_document
from csfabric.kernel.policy._store import PolicyStore
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from tests.integration._workload import eventually
from tests.policykinds import TEST_KIND, TestPolicySpec, register_test_kinds

pytestmark = pytest.mark.integration

OPERATOR = "test:alice"


def doc(name: str = "nightly", **spec: Any) -> PolicyDocument:
    return parse_document(
        {"apiVersion": "csfabric/v1", "kind": TEST_KIND, "metadata": {"name": name}, "spec": spec}
    )


async def messages(js: JetStreamContext, stream: str, subject: str) -> list[dict[str, Any]]:
    """Every JSON message on ``subject`` in ``stream``, oldest first (no consumer needed)."""
    found: list[dict[str, Any]] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        found.append(json.loads(msg.data or b"null"))
        seq = (msg.seq or seq) + 1


@pytest_asyncio.fixture
async def bus(nats_server: NatsServerProcess) -> AsyncIterator[Bus]:
    register_test_kinds()
    bus = await Bus.connect(nats_server.url, service="policytest")
    try:
        yield bus
    finally:
        await bus.close()


async def test_versions_history_audit_and_delete(bus: Bus) -> None:
    store = PolicyStore(bus)
    [first] = await store.apply([doc(action="snapshot")], OPERATOR)
    assert (first.change, first.version) == ("created", 1)
    [again] = await store.apply([doc(action="snapshot")], OPERATOR)
    assert (again.change, again.version) == ("unchanged", 1)
    [second] = await store.apply([doc(action="rotate")], OPERATOR)
    assert (second.change, second.version) == ("updated", 2)
    assert "-  action: snapshot\n+  action: rotate\n" in second.diff

    current = await store.get(TEST_KIND, "nightly")
    old = await store.get(TEST_KIND, "nightly", version=1)
    assert current is not None
    assert old is not None
    assert (current.version, current.applied_by) == (2, OPERATOR)
    assert old.document["spec"]["action"] == "snapshot"
    assert old.parsed() == doc(action="snapshot")
    assert await store.get(TEST_KIND, "nightly", version=3) is None
    assert [p.key for p in await store.list()] == [f"{TEST_KIND}.nightly"]

    history = await messages(bus.js, "CSFABRIC_POLICIES", f"csfabric.policy.{TEST_KIND}.nightly")
    assert [m["version"] for m in history] == [1, 2]

    deleted = await store.delete(TEST_KIND, "nightly", OPERATOR)
    assert deleted.change == "deleted"
    assert await store.get(TEST_KIND, "nightly") is None
    assert await store.list() == []
    past = await store.get(TEST_KIND, "nightly", version=2)
    assert past is not None
    assert past.document["spec"]["action"] == "rotate"
    [recreated] = await store.apply([doc(action="snapshot")], OPERATOR)
    assert (recreated.change, recreated.version) == ("created", 3), "history continues"

    audit = await messages(bus.js, "CSFABRIC_AUDIT", ">")
    assert {r["service"] for r in audit} == {"policy"}
    assert [(r["decision"], r["outcome"], r.get("policy_version")) for r in audit] == [
        ("apply", "success", 1),
        ("apply", "skipped", 1),
        ("apply", "success", 2),
        ("delete", "success", 2),
        ("apply", "success", 3),
    ]
    assert all(r["operator"] == OPERATOR for r in audit)
    assert "+  action: rotate" in audit[2]["evidence"]["diff"]
    assert audit[2]["evidence"]["version"] == 2

    control = await messages(bus.js, "CSFABRIC_CONTROL", ">")
    assert [(e["type"], e["data"]["operator"]) for e in control] == [
        ("control.apply", OPERATOR),
        ("control.apply", OPERATOR),
        ("control.delete", OPERATOR),
        ("control.apply", OPERATOR),
    ]
    assert len({e["id"] for e in control}) == 4


async def test_pause_survives_reapply_until_resumed(bus: Bus) -> None:
    store = PolicyStore(bus)
    await store.apply([doc(action="a")], OPERATOR)
    paused = await store.set_paused(TEST_KIND, "nightly", True, OPERATOR)
    assert (paused.change, paused.version) == ("paused", 1)
    assert (await store.set_paused(TEST_KIND, "nightly", True, OPERATOR)).change == "unchanged"
    [change] = await store.apply([doc(action="b")], OPERATOR)
    stored = await store.get(TEST_KIND, "nightly")
    assert stored is not None
    assert stored.paused
    assert change.version == 2
    await store.set_paused(TEST_KIND, "nightly", False, OPERATOR)
    stored = await store.get(TEST_KIND, "nightly")
    assert stored is not None
    assert not stored.paused


GOOD = """\
apiVersion: csfabric/v1
kind: TestPolicy
metadata: {name: good}
spec: {action: snapshot}
"""
BAD = """\
apiVersion: csfabric/v1
kind: TestPolicy
metadata: {name: bad}
spec:
  every: 15 minutes
"""


async def test_a_directory_with_one_bad_file_stores_nothing(bus: Bus, tmp_path: Path) -> None:
    (tmp_path / "a-good.yaml").write_text(GOOD)
    (tmp_path / "b-bad.yaml").write_text(BAD)
    store = PolicyStore(bus)
    with pytest.raises(PolicyLoadError) as caught:
        await store.apply([p.document for p in load_policies([tmp_path])], OPERATOR)
    assert [f"{p.file}:{p.line}" for p in caught.value.problems] == [f"{tmp_path}/b-bad.yaml:5"]
    assert await store.list() == []


async def test_a_concurrent_change_rolls_back_the_whole_apply(bus: Bus) -> None:
    store, rival = PolicyStore(bus), PolicyStore(bus)
    await store.apply([doc("one", action="v1"), doc("two", action="v1")], OPERATOR)
    original_cas = store._cas

    async def cas_losing_a_race(key: str, value: bytes, revision: int) -> int:
        if key.endswith(".two"):  # someone else applies "two" between our read and write
            await rival.apply([doc("two", action="rival")], "test:bob")
        return await original_cas(key, value, revision)

    store._cas = cas_losing_a_race  # type: ignore[method-assign]
    with pytest.raises(PolicyConflictError, match="nothing was applied"):
        await store.apply([doc("one", action="v2"), doc("two", action="v2")], OPERATOR)
    one, two = await store.get(TEST_KIND, "one"), await store.get(TEST_KIND, "two")
    assert one is not None
    assert two is not None
    assert (one.version, one.document["spec"]["action"]) == (1, "v1"), "rolled back"
    assert (two.version, two.applied_by) == (2, "test:bob")
    history = await messages(bus.js, "CSFABRIC_POLICIES", f"csfabric.policy.{TEST_KIND}.one")
    assert len(history) == 1, "a rolled-back version never reaches the history"


class ActingService:
    """A stand-in service: every ``interval`` it asks the gate and acts with spec.action."""

    def __init__(self, bus: Bus, name: str, interval: float) -> None:
        self.watcher = PolicyWatcher(bus)
        self.gate = ActionGate(self.watcher)
        self.name, self.interval = name, interval
        self.actions: list[tuple[float, str]] = []
        self.changes: list[float] = []
        self.watcher.on_change(lambda key, value: self.changes.append(time.monotonic()))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.watcher.start()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.watcher.stop()

    async def _run(self) -> None:
        while True:
            if (await self.gate.check(TEST_KIND, self.name)).allowed:
                policy = self.watcher.get(TEST_KIND, self.name)
                assert policy is not None
                spec = policy.spec()
                assert isinstance(spec, TestPolicySpec)
                self.actions.append((time.monotonic(), spec.action))
            await asyncio.sleep(self.interval)


async def test_a_change_reaches_a_running_service_without_restart(
    nats_server: NatsServerProcess, bus: Bus
) -> None:
    service_bus = await Bus.connect(nats_server.url, service="actor", create_streams=False)
    service = ActingService(service_bus, "live", interval=0.05)
    store = PolicyStore(bus)
    await store.apply([doc("live", action="snapshot")], OPERATOR)
    await service.start()
    try:
        await eventually(lambda: len(service.actions) >= 3, within=5, what="service acting")
        started = time.monotonic()
        await store.apply([doc("live", action="rotate")], OPERATOR)
        applied = time.monotonic()
        await eventually(
            lambda: service.actions[-1][1] == "rotate", within=2, what="new spec in use"
        )
        first_new = next(t for t, action in service.actions if action == "rotate")
        assert first_new - applied < 1.0
        assert all(a == "rotate" for t, a in service.actions if t > first_new)
        seen = next(t for t in service.changes if t > started)
        print(
            f"\napply took {1000 * (applied - started):.1f} ms; the watcher had the new version"
            f" {1000 * (seen - started):.1f} ms after apply began; first action with it"
            f" {1000 * (first_new - applied):.1f} ms after apply returned (50 ms loop)"
        )
    finally:
        await service.stop()
        await service_bus.close()
