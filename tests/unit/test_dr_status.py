"""``csfabric dr status`` and the SnapshotPolicy warnings of ``policy apply``, against the
simulator on a loopback socket (real clock: nothing here waits on time)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from csfabric.cli.dr_status import _print as print_report
from csfabric.cli.dr_status import collect
from csfabric.cli.policy_warnings import limit_value, rpo_warning, snapshot_warnings
from csfabric.cloudstack import CloudStackClient, CloudStackSettings
from csfabric.cloudstack.simulator import Simulator, World
from csfabric.dr import SnapshotPolicy
from csfabric.kernel import RealClock
from csfabric.kernel.policy._model import parse_document
from csfabric.kernel.testing import MemoryNats, memory_bus
from csfabric.replication.logic import Lag
from csfabric.replication.state import BUCKET, DrState

from tests.servers import free_port

POLICY_YAML = """\
apiVersion: csfabric/v1
kind: SnapshotPolicy
metadata: {name: gold-15m}
spec:
  selector: {zone: zone-london, tags: {csfabric:dr-tier: gold}}
  every: 10m
  timezone: Europe/London
  retain: {count: 144, maxAge: 7d}
  copyTo: [zone-manchester]
  rpo: 15m
  jitter: 30s
"""


def spec(**overrides: Any) -> SnapshotPolicy:
    body: dict[str, Any] = {
        "selector": {"zone": "zone-london", "tags": {"csfabric:dr-tier": "gold"}},
        "every": "10m",
        "retain": {"count": 144},
        "copyTo": ["zone-manchester"],
        "rpo": "15m",
        "jitter": "30s",
    } | overrides
    return SnapshotPolicy.model_validate(body)


@pytest_asyncio.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    simulator = Simulator(World.demo(7), clock=RealClock(), job_latency=0.01)
    await simulator.start("127.0.0.1", free_port())
    try:
        yield simulator
    finally:
        await simulator.stop()


def settings_for(sim: Simulator) -> CloudStackSettings:
    keys = sim.keys()["admin"]
    return CloudStackSettings(
        endpoint=sim.url,
        key=keys["apikey"],
        secret=keys["secretkey"],
        poll_interval=0.01,
        rate_limit_per_second=None,
    )


def gold(sim: Simulator) -> dict[str, str]:
    w = sim.world
    ids = {t.resourceid for t in w.tags if t.key == "csfabric:dr-tier" and t.value == "gold"}
    return {v.id: v.name for v in w.volumes.values() if v.id in ids}


async def snapshot(client: CloudStackClient, volume_id: str, zoneids: str | None) -> str:
    tags = [{"key": "csfabric:policy", "value": "gold-15m"}]
    job = await client.job("createSnapshot", volumeid=volume_id, tags=tags, zoneids=zoneids)
    job.raise_for_status()
    return str(job.resource_id)


async def test_status_shows_each_volume_and_totals(
    sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    manchester = sim.world.zone_named("zone-manchester").id
    [copied, local_only] = sorted(gold(sim))
    async with CloudStackClient(settings_for(sim)) as client:
        before = RealClock().now()
        await snapshot(client, copied, manchester)
        after = RealClock().now()
        await snapshot(client, local_only, None)
        now = RealClock().now() + timedelta(minutes=5)
        [report] = await collect([("gold-15m", spec(), None)], client, now)
    assert report["dr_zone"] == "zone-manchester"
    assert report["totals"]["volumes"] == 2
    assert report["totals"]["with_dr_copy"] == 1
    assert report["totals"]["in_breach"] == 1  # never copied, the volume is old
    rows = {v["volume_id"]: v for v in report["volumes"]}
    # CloudStack's dates have whole seconds: the creation is known to a second.
    low, high = (now - after).total_seconds() - 1, (now - before).total_seconds() + 1
    assert low <= rows[copied]["achieved_rpo_s"] <= high
    assert rows[copied]["breach"] is False
    assert rows[local_only]["newest_local"] is not None
    assert rows[local_only]["newest_dr"] is None
    assert rows[local_only]["breach"] is True
    print_report([report])
    table = capsys.readouterr().out
    assert "2 volume(s), 1 copied, 1 in breach" in " ".join(table.split())  # title may wrap
    assert sorted(gold(sim).values())[0] in table
    assert "BREACH" in table


async def test_the_command_prints_json_from_a_policy_file(sim: Simulator, tmp_path: Path) -> None:
    manchester = sim.world.zone_named("zone-manchester").id
    async with CloudStackClient(settings_for(sim)) as client:
        for volume_id in gold(sim):
            await snapshot(client, volume_id, manchester)
    policy = tmp_path / "gold.yaml"
    policy.write_text(POLICY_YAML)
    keys = sim.keys()["admin"]
    env = {
        **os.environ,
        "CSFABRIC_STATE_DIR": str(tmp_path / "state"),
        "CSFABRIC_CLOUDSTACK_ENDPOINT": sim.url,
        "CSFABRIC_CLOUDSTACK_KEY": keys["apikey"],
        "CSFABRIC_CLOUDSTACK_SECRET": keys["secretkey"],
    }
    args = ["-m", "csfabric.cli", "dr", "status", "--file", str(policy), "--json"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    [report] = json.loads(out)["policies"]
    assert report["policy"] == "gold-15m"
    assert sorted(v["volume_name"] for v in report["volumes"]) == sorted(gold(sim).values())
    assert report["totals"] == {
        "volumes": 2,
        "with_dr_copy": 2,
        "in_breach": 0,
        "worst_rpo_s": report["totals"]["worst_rpo_s"],
    }
    assert report["totals"]["worst_rpo_s"] < 60
    assert keys["secretkey"] not in out.decode() + err.decode()


async def test_an_unknown_policy_is_a_clear_error(sim: Simulator, tmp_path: Path) -> None:
    policy = tmp_path / "gold.yaml"
    policy.write_text(POLICY_YAML)
    env = {**os.environ, "CSFABRIC_STATE_DIR": str(tmp_path / "state")}
    args = ["-m", "csfabric.cli", "dr", "status", "--file", str(policy), "--policy", "nope"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert "no SnapshotPolicy is called 'nope'" in err.decode()


@pytest.mark.parametrize(
    ("times", "warned", "said"),
    [
        ([], False, None),  # 10m + 30s < 15m
        ([timedelta(minutes=2)] * 20, False, None),
        ([timedelta(minutes=5)] * 20, True, "p95 copy time 5m over 20 observed copies"),
    ],
)
def test_worst_case_rpo_warning_says_the_numbers(
    times: list[timedelta], warned: bool, said: str | None
) -> None:
    text = rpo_warning("gold", spec(), times)
    assert (text is not None) == warned
    if text is not None:
        assert "worst-case RPO 15m30s (every 10m + jitter 30s" in text
        assert said is not None
        assert said in text
        assert "exceeds rpo 15m" in text


def test_the_seed_schedule_cannot_hold_its_rpo_and_no_copy_observed_is_said() -> None:
    text = rpo_warning("seed", spec(every="15m"), [])
    assert text is not None
    assert "no copy time observed yet" in text
    assert "worst-case RPO 15m30s" in text


@pytest.mark.parametrize(
    ("raw", "limit"), [(None, 20), ("", 20), ("Unlimited", None), ("-1", None), ("200", 200)]
)
def test_project_snapshot_limit_as_listprojects_shows_it(raw: object, limit: int | None) -> None:
    assert limit_value(raw) == limit


async def test_apply_warnings_read_observed_lag_and_project_limits(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A project's volume joins the gold tier: its project's 30 snapshots cannot hold 144.
    w = sim.world
    project = next(p for p in w.projects.values() if p.name == "project-alpha")
    volume = next(v for v in w.volumes.values() if v.account_id == project.account_id)
    async with CloudStackClient(settings_for(sim)) as client:
        job = await client.job(
            "createTags",
            resourceids=volume.id,
            resourcetype="Volume",
            tags=[{"key": "csfabric:dr-tier", "value": "gold"}],
        )
        job.raise_for_status()
        await client.call("updateResourceLimit", resourcetype=3, max=30, projectid=project.id)
    keys = sim.keys()["admin"]
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_ENDPOINT", sim.url)
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_KEY", keys["apikey"])
    monkeypatch.setenv("CSFABRIC_CLOUDSTACK_SECRET", keys["secretkey"])
    bus = await memory_bus(MemoryNats(), service="cli")
    state = DrState(await bus.key_value(BUCKET))
    lags = [Lag(f"s{i}", "man", 360.0) for i in range(10)]
    await state.add_lags("gold-15m", lags, RealClock().now(), keep=100)
    doc = parse_document(
        {
            "apiVersion": "csfabric/v1",
            "kind": "SnapshotPolicy",
            "metadata": {"name": "gold-15m"},
            "spec": spec().model_dump(mode="json", by_alias=True, exclude_defaults=True)
            | {"every": "10m", "rpo": "15m", "jitter": "30s"},
        }
    )
    warnings = await snapshot_warnings(bus, [doc])
    assert any("worst-case RPO 16m30s" in t and "p95 copy time 6m over 10" in t for t in warnings)
    assert any(
        "project project-alpha allows 30 snapshots but retain.count 144 x 1 volume(s) needs 144"
        in t
        for t in warnings
    )
