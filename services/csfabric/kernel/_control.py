"""Operator commands as CloudEvents on ``csfabric.control.<service>``.

The control stream is the durable record of *what an operator told the fabric to do*
(the audit stream records what the fabric then decided).  Each command gets its own
random id: two pauses an hour apart are two commands, and the stream's duplicate window
must not swallow the second one.
"""

from __future__ import annotations

import uuid

from csfabric.kernel._envelope import CloudEvent, make_event
from csfabric.kernel.bus import Bus

CONTROL_SOURCE = "csfabric/cli"


def control_subject(service: str) -> str:
    return f"csfabric.control.{service}"


def new_command_id() -> str:
    return str(uuid.uuid4())


async def publish_control(
    bus: Bus,
    *,
    service: str,
    command: str,
    target: str,
    operator: str,
    command_id: str | None = None,
) -> CloudEvent:
    """Publish ``control.<command>`` for ``service`` ("policy", "all", a service name)."""
    event = make_event(
        type=f"control.{command}",
        source=CONTROL_SOURCE,
        id=command_id or new_command_id(),
        subject=target,
        time=bus.clock.now(),
        data={"command": command, "target": target, "operator": operator},
    )
    await bus.publish_event(event, subject=control_subject(service))
    return event


__all__ = ["CONTROL_SOURCE", "control_subject", "new_command_id", "publish_control"]
