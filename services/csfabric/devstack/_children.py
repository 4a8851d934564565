"""The service children of ``csfabric dev``: one ``csfabric run <name>`` each, own ops port."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from csfabric.devstack._extras import port_free
from csfabric.devstack._lifeline import Lifeline
from csfabric.devstack._natsserver import HOST
from csfabric.kernel.service import available


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    metrics_url: str
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0


def plan_children(
    commands: Mapping[str, list[str]] | None, first_port: int, env: Mapping[str, str]
) -> list[Child]:
    """A child per command (default: every registered service), each on the next free port.

    ``env`` is added to this process's environment: the NATS URL, state dir, clock and
    the ``--with`` endpoints, so a child needs no ``dev.json`` (written after they start).
    """
    if commands is None:
        commands = {
            name: [sys.executable, "-m", "csfabric.cli", "run", name] for name in available()
        }
    children, port = [], first_port
    for name, argv in commands.items():
        while not port_free(port):
            port += 1
        child_env = {**os.environ, **env, "CSFABRIC_OPS_HOST": HOST, "CSFABRIC_OPS_PORT": str(port)}
        children.append(Child(name, argv, child_env, f"http://{HOST}:{port}"))
        port += 1
    return children


async def spawn(child: Child, lifeline: Lifeline) -> asyncio.subprocess.Process:
    """Start ``child``, tied to us (:mod:`~csfabric.devstack._lifeline`): it ends when we
    do, and the terminal's signals reach only us.  It logs to our stderr; stdout stays
    free for the ready line."""
    return await asyncio.create_subprocess_exec(
        *child.argv,
        env={**child.env, **lifeline.env()},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=2,
        **lifeline.child_kwargs(),
    )


__all__ = ["Child", "plan_children", "spawn"]
