"""The parts of ``csfabric dev`` below its supervisor: ``--with`` servers, demo policies,
``dev.json`` and reaching NATS.  They import only the kernel, so the supervisor
(:mod:`csfabric.devstack._supervisor`) stays about supervising.
"""

from csfabric.devstack._children import Child, plan_children
from csfabric.devstack._demo import (
    DEMO_POLICIES,
    apply_demo_policies,
    demo_files,
    load_demo_policies,
)
from csfabric.devstack._extras import (
    DEFAULT_KAFKA_PORT,
    DEFAULT_POWERDNS_DNS_PORT,
    DEFAULT_POWERDNS_PORT,
    DEFAULT_RABBITMQ_URL,
    EXTRAS,
    Extra,
    ExtraPorts,
    Extras,
    MissingDependencyError,
    check_rabbitmq,
    find_pdns,
    find_tansu,
    plan_extras,
    port_free,
    require_port,
)
from csfabric.devstack._lifeline import LIFELINE_ENV, watch_lifeline
from csfabric.devstack._nats import connect_once, ensure_streams_at, mask_url
from csfabric.devstack._natsserver import INSTALL_HINT, NatsServerNotFoundError, find_nats_server
from csfabric.devstack._servers import LocalServer, PowerDnsServer, Supervised, TansuServer
from csfabric.devstack._simulator import DEFAULT_SIMULATOR_PORT, SimulatorServer, add_simulator
from csfabric.devstack._statefile import (
    EXTRA_KEYS,
    READY_KEYS,
    READY_PREFIX,
    ready_line,
    refuse_second_instance,
    write_private_json,
)
from csfabric.devstack._supervisor import (
    DEFAULT_METRICS_PORT,
    DEFAULT_NATS_PORT,
    DevOptions,
    run_dev,
)

__all__ = [
    "DEFAULT_KAFKA_PORT",
    "DEFAULT_METRICS_PORT",
    "DEFAULT_NATS_PORT",
    "DEFAULT_POWERDNS_DNS_PORT",
    "DEFAULT_POWERDNS_PORT",
    "DEFAULT_RABBITMQ_URL",
    "DEFAULT_SIMULATOR_PORT",
    "DEMO_POLICIES",
    "EXTRAS",
    "EXTRA_KEYS",
    "INSTALL_HINT",
    "LIFELINE_ENV",
    "READY_KEYS",
    "READY_PREFIX",
    "Child",
    "DevOptions",
    "Extra",
    "ExtraPorts",
    "Extras",
    "LocalServer",
    "MissingDependencyError",
    "NatsServerNotFoundError",
    "PowerDnsServer",
    "SimulatorServer",
    "Supervised",
    "TansuServer",
    "add_simulator",
    "apply_demo_policies",
    "check_rabbitmq",
    "connect_once",
    "demo_files",
    "ensure_streams_at",
    "find_nats_server",
    "find_pdns",
    "find_tansu",
    "load_demo_policies",
    "mask_url",
    "plan_children",
    "plan_extras",
    "port_free",
    "ready_line",
    "refuse_second_instance",
    "require_port",
    "run_dev",
    "watch_lifeline",
    "write_private_json",
]
