"""Contract: the simulator's responses have CloudStack's keys and JSON types.

Each implemented command's answer is compared with ``golden/<command>.json`` recursively
(exact key sets, same JSON types, list items against the golden's first item).  The
empty-list and error shapes are compared exactly.  Regenerate the fixtures after a
deliberate shape change with ``CSFABRIC_REGEN_GOLDEN=1``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from csfabric.cloudstack.simulator import Simulator, World, canonical, signature
from csfabric.cloudstack.simulator._registry import COMMANDS

from tests.contract._scenario import Caller, run_all

GOLDEN = Path(__file__).parent / "golden"


def shape_diff(golden: Any, actual: Any, path: str = "$") -> list[str]:
    if isinstance(golden, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected object, got {type(actual).__name__}"]
        problems = []
        if set(golden) != set(actual):
            problems.append(
                f"{path}: missing {sorted(set(golden) - set(actual))}, "
                f"extra {sorted(set(actual) - set(golden))}"
            )
        for key in set(golden) & set(actual):
            problems += shape_diff(golden[key], actual[key], f"{path}.{key}")
        return problems
    if isinstance(golden, list):
        if not isinstance(actual, list):
            return [f"{path}: expected array, got {type(actual).__name__}"]
        if golden and actual:
            return [p for item in actual for p in shape_diff(golden[0], item, f"{path}[]")]
        return []
    if type(golden) is not type(actual):
        return [f"{path}: expected {type(golden).__name__}, got {type(actual).__name__}"]
    return []


@pytest.fixture
async def sim() -> Any:
    simulator = Simulator(World.demo(7), job_latency=0.0)
    yield simulator
    await simulator.stop()


async def test_every_command_matches_its_golden_fixture(sim: Simulator) -> None:
    records = await run_all(sim)
    assert set(records) == set(COMMANDS), "every registered command has a scenario step"
    if os.environ.get("CSFABRIC_REGEN_GOLDEN"):
        for name, record in records.items():
            text = json.dumps(record, indent=2, sort_keys=False) + "\n"
            (GOLDEN / f"{name}.json").write_text(text)
    problems = {}
    for name, record in records.items():
        golden = json.loads((GOLDEN / f"{name}.json").read_text())
        diff = shape_diff(golden, record)
        if diff:
            problems[name] = diff
    assert not problems, problems


async def test_async_jobs_succeed_with_jobresult(sim: Simulator) -> None:
    records = await run_all(sim)
    for record in records.values():
        done = record.get("queryAsyncJobResult")
        if done:
            body = done["queryasyncjobresultresponse"]
            assert body["jobstatus"] == 1, body
            assert body["jobresultcode"] == 0
            assert "jobresult" in body


async def test_empty_list_shape_is_exact(sim: Simulator) -> None:
    call = Caller(sim)
    # A filter matching nothing (an id naming nothing is a 431: test_ordinary_clients).
    assert await call("listVirtualMachines", name="no-such-vm") == {
        "listvirtualmachinesresponse": {}
    }
    assert await call("listSnapshots") == {"listsnapshotsresponse": {}}


async def test_paging_and_count(sim: Simulator) -> None:
    call = Caller(sim)
    everything = (await call("listVolumes", listall="true"))["listvolumesresponse"]
    page = (await call("listVolumes", listall="true", page=2, pagesize=3))["listvolumesresponse"]
    assert page["count"] == everything["count"] > 3
    assert page["volume"] == everything["volume"][3:6]


async def test_tag_and_project_filters(sim: Simulator) -> None:
    call = Caller(sim)
    tagged = await call(
        "listVolumes", **{"tags[0].key": "csfabric:dr-tier", "tags[0].value": "gold"}
    )
    names = {v["name"] for v in tagged["listvolumesresponse"]["volume"]}
    assert names == {"ledger-db-data", "patient-records"}
    proj = next(p for p in sim.world.projects.values() if p.name == "medtech-trial")
    vms = (await call("listVirtualMachines", projectid=proj.id))["listvirtualmachinesresponse"]
    assert [v["project"] for v in vms["virtualmachine"]] == ["medtech-trial"]


async def test_error_shapes_are_exact(sim: Simulator) -> None:
    call = Caller(sim)
    assert await call.raw("noSuchCommand") == (
        432,
        {
            "errorresponse": {
                "uuidList": [],
                "errorcode": 432,
                "cserrorcode": 9999,
                "errortext": "The given command does not exist or it is not available for user",
            }
        },
    )
    status, body = await call.raw("queryAsyncJobResult")
    assert status == 431
    assert body == {
        "queryasyncjobresultresponse": {
            "uuidList": [],
            "errorcode": 431,
            "cserrorcode": 9999,
            "errortext": "Unable to execute API command "
            "queryasyncjobresult due to missing parameter jobid",
        }
    }
    params = {"command": "listZones", "response": "json", "apiKey": call.keys["apikey"]}
    params["signature"] = signature(params, "wrong-secret")
    assert await sim.dispatch(params) == (
        401,
        {
            "listzonesresponse": {
                "uuidList": [],
                "errorcode": 401,
                "errortext": "unable to verify user credentials and/or request signature",
            }
        },
    )


async def test_v3_signature_expiry(sim: Simulator) -> None:
    keys = sim.keys()["user"]

    def signed(expires: datetime) -> dict[str, str]:
        p = {
            "command": "listZones",
            "response": "json",
            "apiKey": keys["apikey"],
            "signatureVersion": "3",
            "expires": expires.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        p["signature"] = signature(p, keys["secretkey"])
        return p

    now = datetime.now(UTC)
    assert (await sim.dispatch(signed(now + timedelta(minutes=5))))[0] == 200
    assert (await sim.dispatch(signed(now - timedelta(seconds=1))))[0] == 401


def test_canonical_matches_cloudstack_encoding() -> None:
    # Java URLEncoder: space → %20 (not +), "*" kept, "~" escaped; then lower-cased.
    assert canonical({"b": "x y*~", "A": "Q", "signature": "s"}) == "a=q&b=x%20y*%7e"


def test_world_is_deterministic_per_seed() -> None:
    one, two, other = World.demo(3), World.demo(3), World.demo(4)
    assert one.keys() == two.keys()
    assert list(one.vms) == list(two.vms)
    assert one.keys()["admin"] != other.keys()["admin"]
    assert {"admin", "csfabric", "sandbox-admin", "user"} <= set(one.keys())


async def test_keys_file_written_0600(tmp_path: Path) -> None:
    from tests.servers import free_port

    simulator = Simulator(World(1), state_dir=tmp_path)
    url = await simulator.start("127.0.0.1", free_port())
    try:
        path = tmp_path / "simulator-keys.json"
        assert path.stat().st_mode & 0o777 == 0o600
        assert json.loads(path.read_text())[url]["admin"] == simulator.keys()["admin"]
    finally:
        await simulator.stop()
