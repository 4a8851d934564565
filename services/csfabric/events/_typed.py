"""From a CloudEvent to its typed payload: :func:`payload`, and :func:`typed` for handlers.

A payload that does not fit its model is the message's fault, so it raises
:class:`PayloadError` — a kernel ``PermanentError``: the consumer dead-letters the event
at once, and the reason names the event, the schema and the field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from csfabric.events._base import Payload, parse_dataschema
from csfabric.events._cloudstack import FAMILIES
from csfabric.events._lifecycle import LIFECYCLE
from csfabric.events.errors import PayloadError
from csfabric.kernel import CloudEvent, clip, quote
from csfabric.kernel.bus import Delivery

M = TypeVar("M", bound=Payload)
_MAX_ERRORS = 3  # fields named in one reason; a dead-letter reason is one header line


def model_for(type_: str) -> type[Payload] | None:
    """The payload model of a CloudEvent type, or None when the catalogue has none."""
    if type_.startswith("cloudstack."):
        family = type_.split(".", 2)[1]
        return FAMILIES.get(family) if type_.count(".") >= 2 else None
    return LIFECYCLE.get(type_)


def payload(event: CloudEvent) -> Payload:
    """``event.data`` as the model of its type (``cloudstack.action.*`` → ActionEventData …).

    Raises :class:`PayloadError` for a type outside the catalogue, a ``dataschema`` naming
    another schema, or data that does not fit.
    """
    model = model_for(event.type)
    if model is None:
        raise PayloadError(f"event type {quote(event.type)} has no payload model")
    return _validate(model, event)


def parse_as(model: type[M], event: CloudEvent) -> M:
    """``event.data`` as ``model``; :class:`PayloadError` when it does not fit."""
    return _validate(model, event)


def _validate(model: type[M], event: CloudEvent) -> M:
    named = parse_dataschema(event.dataschema) if event.dataschema else None
    if named is not None and named[0] != model.schema_stem:
        raise PayloadError(
            f"{quote(event.type)} event {quote(event.id)} names schema {quote(named[0])},"
            f" not {model.schema_stem}",
            field="dataschema",
        )
    # A newer version only adds fields (the compatibility rule), which extra="allow" keeps.
    try:
        return model.model_validate(event.data)
    except ValidationError as exc:
        raise _error(model, event, exc) from None


def _error(model: type[Payload], event: CloudEvent, exc: ValidationError) -> PayloadError:
    errors = exc.errors(include_url=False)
    parts = []
    for error in errors[:_MAX_ERRORS]:
        where = ".".join(str(p) for p in error["loc"])
        msg = error["msg"].removeprefix("Value error, ")
        # The whole payload as "got" would only repeat the event; a field's value helps.
        shown = error["type"] != "missing" and where
        got = f" (got {_short(error.get('input'))})" if shown else ""
        parts.append(f"{where or 'data'}: {msg}{got}")
    more = f"; and {len(errors) - _MAX_ERRORS} more" if len(errors) > _MAX_ERRORS else ""
    first = ".".join(str(p) for p in errors[0]["loc"]) if errors else None
    reason = (
        f"{quote(event.type)} event {quote(event.id)} does not fit"
        f" {model.schema_stem} v{model.schema_version}: {'; '.join(parts)}{more}"
    )
    return PayloadError(clip(reason, 1000, one_line=True), field=first or None)


def _short(value: Any) -> str:
    text = quote(value) if isinstance(value, str) else repr(value)
    return clip(text, 80, one_line=True)


@dataclass(frozen=True)
class TypedEvent(Generic[M]):
    """A CloudEvent with its ``data`` validated: ``event`` is the envelope, ``data`` the model."""

    event: CloudEvent
    data: M

    @property
    def id(self) -> str:
        return self.event.id

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def subject(self) -> str | None:
        return self.event.subject

    @property
    def time(self) -> datetime | None:
        return self.event.time


TypedHandler = Callable[[TypedEvent[M], Delivery], Awaitable[None]]
EventHandler = Callable[[CloudEvent, Delivery], Awaitable[None]]


def typed(model: type[M]) -> Callable[[TypedHandler[M]], EventHandler]:
    """Adapt a handler of ``TypedEvent[model]`` to the kernel consumer's ``(event, delivery)``.

    ::

        @typed(ActionEventData)
        async def on_action(event: TypedEvent[ActionEventData], delivery: Delivery) -> None:
            if event.data.failed: ...

    Data that does not fit raises :class:`PayloadError` before the handler runs, so the
    consumer dead-letters it with a reason naming the field; the consumer is unchanged.
    """

    def wrap(handler: TypedHandler[M]) -> EventHandler:
        @wraps(handler)
        async def adapter(event: CloudEvent, delivery: Delivery) -> None:
            await handler(TypedEvent(event, _validate(model, event)), delivery)

        return adapter

    return wrap


__all__ = [
    "EventHandler",
    "TypedEvent",
    "TypedHandler",
    "model_for",
    "parse_as",
    "payload",
    "typed",
]
