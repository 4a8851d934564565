"""Turns simulator changes into CloudStack's native events (ActionEvent rows too).

Every ActionEvent also becomes an :class:`EventRecord` for ``listEvents`` with the same
uuid, as CloudStack's webhook ``X-CS-Event-ID`` equals the listEvents id.  Sinks are called
in order; a failing sink is logged and never fails the API call that caused the event.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from typing import Protocol

from csfabric.cloudstack import _native as native
from csfabric.cloudstack._native import NativeEvent
from csfabric.cloudstack.simulator._state import EventRecord
from csfabric.cloudstack.simulator._world import World
from csfabric.kernel import Clock

log = logging.getLogger("csfabric.simulator.events")


class EventSink(Protocol):
    """Where the simulator's events go (a feed, the event log); the one protocol of both."""

    async def emit(self, event: NativeEvent) -> None: ...

    async def close(self) -> None: ...


class Emitter:
    def __init__(
        self, world: World, clock: Clock, sinks: list[EventSink], tz: tzinfo = UTC
    ) -> None:
        self.world = world
        self.clock = clock
        self.sinks = sinks
        self.tz = tz
        self.emitted: list[NativeEvent] = []  # in-process view for tests and benchmarks

    def now(self) -> datetime:
        return self.clock.now()

    async def publish(self, event: NativeEvent) -> None:
        self.emitted.append(event)
        for sink in self.sinks:
            try:
                await sink.emit(event)
            except Exception:  # a feed outage must not fail the API call
                log.exception("event sink %r failed", sink)

    async def action(
        self,
        event: str,
        status: str,
        description: str,
        *,
        user_id: str,
        account_id: str,
        entity: str | None = None,
        entity_uuid: str | None = None,
        related: dict[str, str] | None = None,
        level: str = "INFO",
        parent: str | None = None,
    ) -> NativeEvent:
        """Store the event row (``parent`` = the chain's first event id, CloudStack's
        ``startId``) and publish it."""
        when = self.now()
        event_id = self.world.new_id("event")
        acct = self.world.accounts[account_id]
        self.world.events.append(
            EventRecord(
                event_id,
                event,
                status,
                description,
                user_id,
                account_id,
                when,
                level=level,
                resourcetype=entity,
                resourceid=entity_uuid,
                parentid=parent,
            )
        )
        native_event = native.action_event(
            event,
            status,
            description,
            user=user_id,
            account=account_id,
            entity=entity,
            entity_uuid=entity_uuid,
            when=when,
            tz=self.tz,
            project=acct.project_id,
            related=related,
            event_id=event_id,
        )
        await self.publish(native_event)
        return native_event

    async def usage(
        self,
        event: str,
        *,
        zone_id: str | None,
        resource_class: str,
        resource_uuid: str,
        account_id: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        await self.publish(
            native.usage_event(
                event,
                zone=zone_id,
                resource_class=resource_class,
                resource_uuid=resource_uuid,
                account=account_id,
                when=self.now(),
                tz=self.tz,
                extra=extra,
            )
        )

    async def state(
        self, resource_type: str, uuid: str, fsm: str, old: str, new: str, *, account_id: str
    ) -> None:
        """Publish the transition twice, as CloudStack does (pre/post commit)."""
        is_vm = resource_type == "VirtualMachine"
        for status in ("preStateTransitionEvent", "postStateTransitionEvent"):
            await self.publish(
                native.state_event(
                    resource_type,
                    uuid,
                    fsm,
                    old,
                    new,
                    when=self.now(),
                    tz=self.tz,
                    status=status if is_vm else None,
                    account=account_id,
                )
            )
