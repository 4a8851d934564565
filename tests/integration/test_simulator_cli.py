"""``csfabric simulator`` as a real process: keys, the admin fault endpoint, ``csfabric dev``."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from csfabric.cli.simulator import READY_PREFIX
from csfabric.cloudstack.simulator import signature
from csfabric.devstack import READY_PREFIX as DEV_READY

from tests.integration.test_dev import REPO, _env, _processes_mentioning
from tests.servers import free_port

pytestmark = pytest.mark.integration

Start = Callable[..., Coroutine[Any, Any, tuple[asyncio.subprocess.Process, str]]]


async def _ready(proc: asyncio.subprocess.Process, prefix: str) -> dict[str, Any]:
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise AssertionError(f"exited ({await proc.wait()}) before its ready line")
            if line.startswith(prefix):
                ready: dict[str, Any] = json.loads(line[len(prefix) :])
                return ready


@pytest.fixture
async def start_simulator(tmp_path: Path) -> AsyncIterator[Start]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(*args: str, state: Path | None = None) -> tuple[Any, str]:
        state = state or tmp_path / "state"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "csfabric.cli", "simulator", "--port", str(free_port()),
            "--state-dir", str(state), *args,
            env=_env(state), cwd=REPO, stdout=asyncio.subprocess.PIPE,
            stderr=(tmp_path / f"simulator-{len(procs)}.log").open("wb"),
        )  # fmt: skip
        procs.append(proc)
        return proc, (await _ready(proc, READY_PREFIX))["endpoint"]

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _keys(state: Path, endpoint: str) -> dict[str, dict[str, str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "simulator", "keys", "--json",
        "--endpoint", endpoint, "--state-dir", str(state),
        env=_env(state), cwd=REPO, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    keys: dict[str, dict[str, str]] = json.loads(out)
    return keys


async def _call(
    http: aiohttp.ClientSession, endpoint: str, pair: dict[str, str], command: str
) -> tuple[int, dict[str, Any]]:
    params = {"command": command, "response": "json", "apikey": pair["apikey"]}
    params["signature"] = signature(params, pair["secretkey"])
    async with http.get(endpoint, params=params) as response:
        return response.status, await response.json(content_type=None)


async def test_keys_are_deterministic_per_seed(start_simulator: Start, tmp_path: Path) -> None:
    seen = []
    for run, seed in enumerate(("7", "7", "8")):
        state = tmp_path / f"state-{run}"
        proc, endpoint = await start_simulator("--seed", seed, state=state)
        keys = await _keys(state, endpoint)
        assert {"admin", "csfabric"} <= set(keys)
        assert all(set(pair) == {"apikey", "secretkey"} for pair in keys.values())
        assert (state / "simulator-keys.json").stat().st_mode & 0o777 == 0o600
        seen.append(keys)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    assert seen[0] == seen[1]
    assert seen[0]["admin"] != seen[2]["admin"]


async def test_admin_endpoint_injects_faults_with_cloudstack_error_shape(
    start_simulator: Start, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    _, endpoint = await start_simulator("--seed", "7", "--fault", "listVolumes:1:533")
    keys = await _keys(state, endpoint)
    admin_url = endpoint.replace("/client/api", "/admin/faults")
    header = {"X-Admin-Key": keys["admin"]["secretkey"]}
    async with aiohttp.ClientSession() as http:
        for wrong in ({}, {"X-Admin-Key": "nope"}, {"X-Admin-Key": keys["user"]["secretkey"]}):
            async with http.post(admin_url, json={"command": "listZones"}, headers=wrong) as r:
                assert r.status == 401
        assert (await _call(http, endpoint, keys["admin"], "listZones"))[0] == 200
        status, body = await _call(http, endpoint, keys["admin"], "listVolumes")  # --fault
        assert status == 533
        assert body["listvolumesresponse"]["errorcode"] == 533

        fault = {"command": "listZones", "error_rate": 1.0, "errorcode": 530}
        async with http.post(admin_url, json=fault, headers=header) as response:
            assert response.status == 200
            assert (await response.json())["set"][0]["errorcode"] == 530
        status, body = await _call(http, endpoint, keys["csfabric"], "listZones")
        assert status == 530
        error = body["listzonesresponse"]
        assert list(error) == ["uuidList", "errorcode", "cserrorcode", "errortext"]
        assert error["uuidList"] == []
        assert error["errorcode"] == 530
        assert isinstance(error["cserrorcode"], int)
        assert isinstance(error["errortext"], str)

        async with http.post(admin_url, json={"error_rate": 3}, headers=header) as response:
            assert response.status == 400
        async with http.get(admin_url, headers=header) as response:
            listing = await response.json()
        assert {f["command"] for f in listing["faults"]} == {"listVolumes", "listZones"}
        assert listing["injected"] == {"listVolumes:533": 1, "listZones:530": 1}
        async with http.delete(admin_url, headers=header) as response:
            assert (await response.json())["cleared"] == 2
        status, body = await _call(http, endpoint, keys["admin"], "listZones")
        assert status == 200
        assert body["listzonesresponse"]["count"] == 2
    log = (tmp_path / "simulator-0.log").read_text()
    assert keys["admin"]["secretkey"] not in log


async def test_dev_runs_the_simulator_and_publishes_its_keys_privately(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sim_port = free_port()
    env = {**_env(state), "CSFABRIC_SIMULATOR_PORT": str(sim_port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "csfabric.cli", "dev", "--nats-port", str(free_port()),
        "--metrics-port", str(free_port()), "--time-scale", "60",
        env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE,
        stderr=(tmp_path / "dev.log").open("wb"),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            while not (line := (await proc.stdout.readline()).decode()).startswith(DEV_READY):
                assert line, "csfabric dev exited before ready"
        ready = json.loads(line[len(DEV_READY) :])
        endpoint = f"http://127.0.0.1:{sim_port}/client/api"
        assert ready["cloudstack_endpoint"] == endpoint

        dev_file = state / "dev.json"
        assert dev_file.stat().st_mode & 0o777 == 0o600
        content = json.loads(dev_file.read_text())
        keys = await _keys(state, endpoint)
        assert content["cloudstack_key"] == keys["csfabric"]["apikey"]
        assert content["cloudstack_secret"] == keys["csfabric"]["secretkey"]
        for pair in keys.values():
            assert pair["apikey"] not in line
            assert pair["secretkey"] not in line
        simulator_pid = content["simulator_pid"]
        assert simulator_pid in _processes_mentioning(str(state))
        # The simulator runs on the stack's clock (scaled x60 from a shared epoch).
        environ = await asyncio.to_thread(Path(f"/proc/{simulator_pid}/environ").read_bytes)
        assert f"CSFABRIC_CLOCK={ready['clock']}".encode() in environ.split(b"\0")
        async with aiohttp.ClientSession() as http:
            pair = {"apikey": content["cloudstack_key"], "secretkey": content["cloudstack_secret"]}
            status, body = await _call(http, endpoint, pair, "listZones")
        assert status == 200
        assert body["listzonesresponse"]["count"] == 2

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        assert _processes_mentioning(str(state)) == []
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
