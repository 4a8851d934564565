"""Shared fixtures: real servers on 127.0.0.1, the backbone (in memory and on nats-server)
and the Hypothesis profile.

Server fixtures never skip: a missing binary or server fails the test with the command
that installs it (see ``tests/servers.py``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from hypothesis import settings

from tests.backbone import Backbone, no_network
from tests.servers import (
    NatsServerNotFoundError,
    NatsServerProcess,
    TansuBroker,
    TansuNotFoundError,
    find_nats_server,
    free_port,
    free_ports,
    require_rabbitmq,
    wait_for_jetstream,
)

# No deadline: CI machines and real-server round trips make timings noisy.
settings.register_profile("ci", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _nats_binary() -> str:
    try:
        return find_nats_server()
    except NatsServerNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest_asyncio.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServerProcess]:
    """A fresh single nats-server with JetStream; store and log under ``tmp_path/nats``."""
    server = NatsServerProcess(free_port(), tmp_path / "nats", binary=_nats_binary())
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def nats_cluster(tmp_path: Path) -> AsyncIterator[list[NatsServerProcess]]:
    """Three nats-servers (n1..n3, cluster ``c1``) with JetStream ready for R3 streams."""
    binary = _nats_binary()
    ports = free_ports(6)
    client_ports, route_ports = ports[:3], ports[3:]
    routes = [f"nats://127.0.0.1:{port}" for port in route_ports]
    nodes = [
        NatsServerProcess(
            client_port,
            tmp_path / f"n{i}",
            name=f"n{i}",
            cluster_name="c1",
            cluster_port=route_port,
            routes=routes,
            binary=binary,
        )
        for i, (client_port, route_port) in enumerate(
            zip(client_ports, route_ports, strict=True), start=1
        )
    ]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        await wait_for_jetstream(nodes[0].url, replicas=3, timeout=20.0)
        yield nodes
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap ``127.0.0.1:PORT`` of one memory-only tansu broker for the whole session.

    Sync on purpose: no event loop is shared across tests.  Topics persist for the
    session, so each test should use its own topic names.
    """
    broker = TansuBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        broker.start()
    except TansuNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def rabbitmq_url() -> str:
    """AMQP URL of the local RabbitMQ (guest/guest on 127.0.0.1:5672); fails if down."""
    return require_rabbitmq()


# -- the backbone: in memory and on nats-server ----------------------------------------


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("nats", marks=pytest.mark.integration),
    ]
)
def backbone_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """None for the in-memory side; the URL of a fresh nats-server for the other.

    The in-memory side may not touch the network: ``nats.connect`` is made to fail, so a
    test that reached for a server would error.  Sync, so that it can ask for the (async)
    server fixture only when it is needed: ``-m memory`` never starts nats-server.
    """
    if request.param == "memory":
        monkeypatch.setattr(nats, "connect", no_network)
        return None
    url: str = request.getfixturevalue("nats_server").url
    return url


@pytest_asyncio.fixture
async def backbone(backbone_url: str | None) -> AsyncIterator[Backbone]:
    backbone = Backbone("memory" if backbone_url is None else "nats", backbone_url)
    try:
        yield backbone
    finally:
        await backbone.close()
