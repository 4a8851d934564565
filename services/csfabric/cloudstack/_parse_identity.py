"""Event identity: the same CloudStack event on any feed gets one id (a piece of :mod:`._parse`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from csfabric.cloudstack._parse_fields import DATETIME_FORMAT, ROUTING_CATEGORIES, simple_type

# UUIDv5 namespace of CloudStack event identities; changing it re-identifies every event.
IDENTITY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:csfabric:cloudstack-event")
_NORMALISED_CLASS_KEYS = ("entity", "resource")


def event_identity(category: str, body: Mapping[str, str]) -> str:
    """UUIDv5 over the family and the normalised body; the same event on any feed → one id.

    Normalised: a BOM on the first key dropped, keys sorted, ``eventDateTime`` as its UTC
    instant (so a zone change between feeds does not split it), ``entity``/``resource`` Java
    class names as the simple type name (4.18 changed the style).  Nothing else changes,
    so VM pre/post state messages (which differ in ``status``) keep distinct ids while
    byte-identical volume/snapshot copies share one.
    """
    family = ROUTING_CATEGORIES.get(category, category)
    norm: dict[str, str] = {}
    for key, value in body.items():
        norm[key.lstrip("\ufeff")] = value
    for key in _NORMALISED_CLASS_KEYS:
        if key in norm:
            norm[key] = simple_type(norm[key])
    if "eventDateTime" in norm:
        try:
            instant = datetime.strptime(norm["eventDateTime"], DATETIME_FORMAT)
        except ValueError:
            pass  # unparseable bodies never reach the bus; keep the text for a stable id
        else:
            norm["eventDateTime"] = instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    canonical = json.dumps(norm, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return str(uuid.uuid5(IDENTITY_NAMESPACE, f"{family}\n{canonical}"))


__all__ = ["IDENTITY_NAMESPACE", "event_identity"]
