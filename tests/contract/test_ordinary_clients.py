"""Ordinary CloudStack clients against the simulator over a real socket, each with its own
library: the ``cs`` CLI, Apache Libcloud's CloudStack driver, Ansible's ngine_io.cloudstack.

Each one discovers an offering and a template by name, deploys a VM from their ids,
snapshots the VM's volume, stops it and expunges it — what a user's first script does.
Ansible's cs_volume also runs a data disk's cycle twice over, which only holds if the
answers carry what it compares (disk offering, size, ``attached``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from csfabric.cloudstack.simulator import Simulator, World

from tests.servers import free_port

BIN = Path(sys.executable).parent
SMALL = "Small Instance"
CENTOS = "CentOS 5.6 (64-bit) no GUI (Simulator)"
INSTALL = ".venv/bin/pip install apache-libcloud==3.9.1 ansible==10.7.0"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(World.demo(5), job_latency=0.05)
    await simulator.start("127.0.0.1", free_port())
    yield simulator
    await simulator.stop()


def _env(sim: Simulator, home: Path) -> dict[str, str]:
    keys = sim.keys()["admin"]
    return os.environ | {
        "CLOUDSTACK_ENDPOINT": sim.url,
        "CLOUDSTACK_KEY": keys["apikey"],
        "CLOUDSTACK_SECRET": keys["secretkey"],
        "CLOUDSTACK_POLL_INTERVAL": "0.05",  # cs polls jobs every 2 s by default
        "HOME": str(home),  # no ~/.cloudstack.ini or ~/.ansible of the developer's
    }


async def _run(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _assert_gone(sim: Simulator, vm_id: str, snapshot_volume: str) -> None:
    """The VM is expunged (no record, no root volume); the snapshot outlives it."""
    assert vm_id not in sim.world.vms
    assert not [v for v in sim.world.volumes.values() if v.virtualmachineid == vm_id]
    assert [s for s in sim.world.snapshots.values() if s.volumeid == snapshot_volume]


# -- cs ---------------------------------------------------------------------------------


async def test_cs_cli_full_cycle(sim: Simulator, tmp_path: Path) -> None:
    env = _env(sim, tmp_path)

    async def cs(*args: str) -> Any:
        code, out, err = await _run(env, str(BIN / "cs"), *args)
        assert code == 0, out + err
        return json.loads(out)

    zone = (await cs("listZones", "name=zone-london"))["zone"][0]["id"]
    offering = (await cs("listServiceOfferings", f"name={SMALL}"))["serviceoffering"][0]
    template = (
        await cs("listTemplates", "templatefilter=executable", f"name={CENTOS}", f"zoneid={zone}")
    )["template"][0]
    vm = (
        await cs(
            "deployVirtualMachine",
            f"zoneid={zone}",
            f"serviceofferingid={offering['id']}",
            f"templateid={template['id']}",
            "name=cs-cycle",
        )
    )["virtualmachine"]
    assert (vm["serviceofferingname"], vm["templatename"], vm["state"]) == (
        SMALL,
        CENTOS,
        "Running",
    )
    root = (await cs("listVolumes", f"virtualmachineid={vm['id']}", "type=ROOT"))["volume"][0]
    snap = (await cs("createSnapshot", f"volumeid={root['id']}"))["snapshot"]
    assert (snap["volumeid"], snap["state"]) == (root["id"], "BackedUp")
    stopped = (await cs("stopVirtualMachine", f"id={vm['id']}"))["virtualmachine"]
    assert stopped["state"] == "Stopped"
    await cs("destroyVirtualMachine", f"id={vm['id']}", "expunge=true")
    _assert_gone(sim, vm["id"], root["id"])


async def test_cs_cli_gets_cloudstacks_431_for_a_made_up_offering(
    sim: Simulator, tmp_path: Path
) -> None:
    zone = sim.world.zone_named("zone-london").id
    code, out, err = await _run(
        _env(sim, tmp_path),
        str(BIN / "cs"),
        "deployVirtualMachine",
        f"zoneid={zone}",
        "serviceofferingid=small",
        f"templateid={sim.world.template_id}",
    )
    assert code != 0
    assert "431" in out + err
    assert (
        "Unable to execute API command deployvirtualmachine due to invalid value. Invalid "
        "parameter serviceofferingid value=small due to incorrect long value format, or entity "
        "does not exist or due to incorrect parameter annotation for the field in api cmd class."
    ) in out + err
    assert not [v for v in sim.world.vms.values() if v.serviceofferingid == "small"]


# -- Apache Libcloud --------------------------------------------------------------------


def _libcloud_cycle(url: str, key: str, secret: str) -> dict[str, Any]:
    try:
        from libcloud.compute.providers import Provider, get_driver
    except ImportError:  # pragma: no cover - the failure names the install command
        pytest.fail(f"apache-libcloud is not installed: {INSTALL}")
    driver = get_driver(Provider.CLOUDSTACK)(key, secret, secure=False, url=url)
    driver.connection.poll_interval = 0.05  # the simulator's jobs take 0.05 s
    location = next(loc for loc in driver.list_locations() if loc.name == "zone-london")
    size = next(s for s in driver.list_sizes() if s.name == SMALL)
    image = next(i for i in driver.list_images(location) if i.name == CENTOS)
    # Libcloud deploys with startvm=false unless told otherwise, then starts the node itself.
    node = driver.create_node(name="libcloud-cycle", size=size, image=image, location=location)
    started = driver.ex_start(node)
    listed = [n for n in driver.list_nodes(location=location) if n.id == node.id]
    root = next(v for v in driver.list_volumes(node) if v.extra["volume_type"] == "ROOT")
    snapshot = driver.create_volume_snapshot(root)
    stopped = driver.ex_stop(node)
    destroyed = driver.destroy_node(node, ex_expunge=True)
    return {
        "node": node.id,
        "size": (size.id, size.ram),
        "image": image.id,
        "deployed": node.state,
        "private_ips": node.private_ips,
        "started": started,
        "listed": [(n.name, n.state, n.private_ips) for n in listed],
        "root": root.id,
        "snapshot": (snapshot.id, snapshot.extra.get("volume_id")),
        "stopped": stopped,
        "destroyed": destroyed,
    }


async def test_libcloud_full_cycle(sim: Simulator) -> None:
    keys = sim.keys()["admin"]
    got = await asyncio.to_thread(_libcloud_cycle, sim.url, keys["apikey"], keys["secretkey"])
    w = sim.world
    small = next(o for o in w.service_offerings.values() if o.name == SMALL)
    assert got["size"] == (small.id, small.memory)
    assert got["image"] == w.template_id
    assert got["deployed"] == "stopped"  # libcloud asks for startvm=false
    # list_nodes (listVirtualMachines + public addresses and forwarding rules) finds it.
    assert got["listed"] == [("libcloud-cycle", "running", got["private_ips"])]
    assert got["private_ips"]
    assert got["started"]
    assert got["stopped"]
    assert got["destroyed"]
    snap_id, volume_id = got["snapshot"]
    assert w.snapshots[snap_id].volumeid == got["root"] == volume_id
    _assert_gone(sim, got["node"], got["root"])
    # deployVirtualMachine startvm=false left it Stopped; ex_start's job ran VM.START.
    events = [(e.type, e.state) for e in w.events if e.resourceid == got["node"]]
    assert ("VM.START", "Completed") in events


# -- Ansible (ngine_io.cloudstack) ------------------------------------------------------

PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: deploy
      ngine_io.cloudstack.cs_instance:
        name: ansible-cycle
        zone: zone-london
        service_offering: "{small}"
        template: "{centos}"
        state: present
      register: vm
    - name: snapshot policy on its root volume
      ngine_io.cloudstack.cs_snapshot_policy:
        vm: ansible-cycle
        volume_type: ROOT
        interval_type: daily
        schedule: "00:1"
        max_snaps: 3
        time_zone: UTC
      register: policy
    - name: stop
      ngine_io.cloudstack.cs_instance:
        name: ansible-cycle
        zone: zone-london
        state: stopped
      register: stopped
    - name: expunge
      ngine_io.cloudstack.cs_instance:
        name: ansible-cycle
        zone: zone-london
        state: expunged
      register: gone
    - name: results
      ansible.builtin.copy:
        content: >-
          {{{{ {{'vm': vm, 'policy': policy, 'stopped': stopped, 'gone': gone}} | to_json }}}}
        dest: "{out}"
"""


async def test_ansible_full_cycle(sim: Simulator, tmp_path: Path) -> None:
    playbook = BIN / "ansible-playbook"
    if not playbook.exists():
        pytest.fail(f"ansible-playbook is not installed: {INSTALL}")
    out = tmp_path / "results.json"
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(small=SMALL, centos=CENTOS, out=out))
    env = _env(sim, tmp_path) | {
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,  # the venv that has ``cs``
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    }
    code, stdout, stderr = await _run(
        env, str(playbook), "-i", "localhost,", str(tmp_path / "play.yml")
    )
    assert code == 0, stdout + stderr
    res = json.loads(out.read_text())
    vm = res["vm"]
    assert vm["changed"]
    assert vm["state"] == "Running"
    assert (vm["service_offering"], vm["template"]) == (SMALL, CENTOS)
    w = sim.world
    policy = res["policy"]
    assert policy["changed"]
    assert policy["interval_type"] == "daily"
    assert (policy["max_snaps"], policy["schedule"]) == (3, "00:1")
    root = [e.resourceid for e in w.events if e.type == "SNAPSHOTPOLICY.CREATE"]
    assert root, "createSnapshotPolicy ran"
    assert res["stopped"]["state"] == "Stopped"
    assert res["gone"]["changed"]
    assert vm["id"] not in w.vms
    assert policy["id"] not in w.snapshot_policies  # expunged with the root volume


VOLUME_PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: create
      ngine_io.cloudstack.cs_volume: &vol
        name: ansible-data
        zone: zone-london
        disk_offering: Custom
        size: 5
        state: present
      register: created
    - name: create again
      ngine_io.cloudstack.cs_volume: *vol
      register: again
    - name: attach
      ngine_io.cloudstack.cs_volume:
        name: ansible-data
        zone: zone-london
        vm: {vm}
        state: attached
      register: attached
    - name: attach again
      ngine_io.cloudstack.cs_volume:
        name: ansible-data
        zone: zone-london
        vm: {vm}
        state: attached
      register: attached_again
    - name: detach
      ngine_io.cloudstack.cs_volume:
        name: ansible-data
        zone: zone-london
        state: detached
      register: detached
    - name: delete
      ngine_io.cloudstack.cs_volume:
        name: ansible-data
        zone: zone-london
        state: absent
      register: deleted
    - name: results
      ansible.builtin.copy:
        content: >-
          {{{{ {{'created': created, 'again': again, 'attached': attached,
          'attached_again': attached_again, 'detached': detached,
          'deleted': deleted}} | to_json }}}}
        dest: "{out}"
"""


async def test_ansible_volume_cycle_is_idempotent(sim: Simulator, tmp_path: Path) -> None:
    """cs_volume tells a volume's offering and size by ``diskofferingid`` and an attached
    one by ``attached``: without them a second run would resize or re-attach."""
    playbook = BIN / "ansible-playbook"
    if not playbook.exists():
        pytest.fail(f"ansible-playbook is not installed: {INSTALL}")
    vm = next(v for v in sim.world.vms.values() if v.name == "ci-records-etl-runner")
    out = tmp_path / "results.json"
    (tmp_path / "play.yml").write_text(VOLUME_PLAYBOOK.format(vm=vm.name, out=out))
    env = _env(sim, tmp_path) | {
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    }
    code, stdout, stderr = await _run(
        env, str(playbook), "-i", "localhost,", str(tmp_path / "play.yml")
    )
    assert code == 0, stdout + stderr
    res = json.loads(out.read_text())
    changed = {step: res[step]["changed"] for step in res}
    assert changed == {
        "created": True,
        "again": False,
        "attached": True,
        "attached_again": False,
        "detached": True,
        "deleted": True,
    }
    assert res["created"]["size"] == 5 * 1024**3
    assert res["attached"]["vm"] == vm.name
    assert "attached" in res["attached"]
    assert not [v for v in sim.world.volumes.values() if v.name == "ansible-data"]
