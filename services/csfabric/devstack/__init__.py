"""``csfabric dev``: one command that runs a whole local fabric, and the parts it is made of.

The room: the supervisor (:func:`run_dev`, ``_supervisor``) and what it supervises — a
local ``nats-server`` (``_natsserver``, found in the venv or the system), child processes
(``_process``, ``_children``), ``--with`` servers (``_extras``, ``_servers``: Tansu,
PowerDNS, a checked RabbitMQ), the simulator (``_simulator``), demo policies (``_demo``),
``dev.json`` and the ready line (``_statefile``), and reaching NATS (``_nats``).

It must not know any service (services are found through the kernel's registry, never
imported) nor the CLI above it; it is development tooling, so no service may import it
(the layers contract puts it just below ``cli``).

This module is the door: the CLI and the test harness import from here, never from the
``_private`` modules (import-linter's "Door: csfabric.devstack").  Errors are in
:mod:`csfabric.devstack.errors` and drawn in the tree in :mod:`csfabric.kernel.errors`.
"""

from csfabric.devstack._demo import DEMO_POLICIES, demo_files, load_demo_policies
from csfabric.devstack._extras import Extra, ExtraPorts, find_tansu, port_free, require_port
from csfabric.devstack._lifeline import LIFELINE_ENV, watch_lifeline
from csfabric.devstack._nats import connect_once, mask_url
from csfabric.devstack._natsserver import INSTALL_HINT, find_nats_server
from csfabric.devstack._servers import TansuServer
from csfabric.devstack._simulator import SimulatorServer
from csfabric.devstack._statefile import READY_KEYS, READY_PREFIX, write_private_json
from csfabric.devstack._supervisor import (
    DEFAULT_METRICS_PORT,
    DEFAULT_NATS_PORT,
    DevOptions,
    run_dev,
)
from csfabric.devstack.errors import MissingDependencyError, NatsServerNotFoundError

__all__ = [
    "DEFAULT_METRICS_PORT",
    "DEFAULT_NATS_PORT",
    "DEMO_POLICIES",
    "INSTALL_HINT",
    "LIFELINE_ENV",
    "READY_KEYS",
    "READY_PREFIX",
    "DevOptions",
    "Extra",
    "ExtraPorts",
    "MissingDependencyError",
    "NatsServerNotFoundError",
    "SimulatorServer",
    "TansuServer",
    "connect_once",
    "demo_files",
    "find_nats_server",
    "find_tansu",
    "load_demo_policies",
    "mask_url",
    "port_free",
    "require_port",
    "run_dev",
    "watch_lifeline",
    "write_private_json",
]
