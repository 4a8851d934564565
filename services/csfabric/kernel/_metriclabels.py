"""Bounded metric labels: what a subject or an error name may become in a Prometheus series.

Subject tokens come from producers (a CloudStack event name, a lifecycle type, a service
name), so labelling series with the raw subject lets any producer create series without
end — each one memory in every service and in Prometheus.  :func:`subject_labels` maps a
subject to ``(family, category, type)`` drawn from fixed catalogues, with ``other`` for
anything not in them, so the number of series has a known bound
(:data:`SUBJECT_LABEL_SETS`).  :class:`CappedLabel` bounds values that come from our own
code but are open-ended (error class names): the first ``cap`` distinct ones are kept.

The catalogues are the event names the fabric handles or the CloudStack reference names;
an event outside them is still counted, under ``type="other"``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import product

__all__ = [
    "ACTION_TYPES",
    "ALERT_TYPES",
    "CATEGORIES",
    "FABRIC_FAMILIES",
    "FEED_FAMILIES",
    "LIFECYCLE_TYPES",
    "OTHER",
    "STATE_RESOURCES",
    "SUBJECT_LABEL_SETS",
    "CappedLabel",
    "subject_labels",
]

OTHER = "other"
NONE = ""  # a label that does not apply to the family (Prometheus reads "" as absent)

# Names of the feeds ingest counts before parsing (``cloudstack.<transport>``).
FEED_FAMILIES = frozenset(
    {"cloudstack.webhook", "cloudstack.amqp", "cloudstack.kafka", "cloudstack.poll"}
)
# Fabric outputs (DESIGN "Event types and subjects"); their later tokens name services or
# alerts, so they carry no type.
FABRIC_FAMILIES = frozenset({"audit", "alert", "control", "dlq", "replay", "policy"})
CATEGORIES = frozenset({"action", "usage", "alert", "state"})

# ActionEvent and UsageEvent names (both use CloudStack's EventTypes names).
ACTION_TYPES = frozenset(
    {
        *(f"VM.{v}" for v in ("CREATE", "START", "STOP", "REBOOT", "DESTROY", "EXPUNGE")),
        *(f"VM.{v}" for v in ("RECOVER", "UPGRADE", "MIGRATE", "RESTORE", "UPDATE")),
        *(f"VM.SNAPSHOT.{v}" for v in ("CREATE", "DELETE", "REVERT")),
        *(f"VOLUME.{v}" for v in ("CREATE", "DELETE", "DESTROY", "ATTACH", "DETACH")),
        *(f"VOLUME.{v}" for v in ("RESIZE", "MIGRATE", "UPLOAD", "EXTRACT")),
        *(f"SNAPSHOT.{v}" for v in ("CREATE", "COPY", "DELETE", "REVERT")),
        *(f"SNAPSHOTPOLICY.{v}" for v in ("CREATE", "UPDATE", "DELETE")),
        *(f"PROJECT.{v}" for v in ("CREATE", "UPDATE", "DELETE", "ACTIVATE", "SUSPEND")),
        *(f"PROJECT.{w}.{v}" for w in ("ACCOUNT", "USER") for v in ("ADD", "REMOVE")),
        *(f"NETWORK.{v}" for v in ("CREATE", "DELETE", "UPDATE", "RESTART")),
        *(f"KUBERNETES.CLUSTER.{v}" for v in ("CREATE", "DELETE", "START", "STOP")),
        *(f"KUBERNETES.CLUSTER.{v}" for v in ("SCALE", "UPGRADE")),
        *(f"TEMPLATE.{v}" for v in ("CREATE", "DELETE", "UPDATE", "COPY")),
        *(f"TAGS.{v}" for v in ("CREATE", "DELETE")),
        *(f"ACCOUNT.{v}" for v in ("CREATE", "DELETE", "DISABLE", "ENABLE", "UPDATE")),
        *(f"USER.{v}" for v in ("LOGIN", "LOGOUT", "CREATE", "DELETE")),
        *(f"NET.{v}" for v in ("IPASSIGN", "IPRELEASE")),
        "RESOURCE.LIMIT.UPDATE",
        "TEST.WEBHOOK",
    }
)
ALERT_TYPES = frozenset(
    f"ALERT.{name}"
    for name in (
        "COMPUTE.HOST",
        "MEMORY",
        "CPU",
        "STORAGE",
        "STORAGE.ALLOCATED",
        "STORAGE.PRIMARY",
        "STORAGE.SECONDARY",
        "STORAGE.MISC",
        "SERVICE.DOMAINROUTER",
        "SERVICE.CONSOLEPROXY",
        "SERVICE.SSVM",
        "MANAGEMENT.NODE",
        "USAGE.SERVER",
        "USAGE.SERVER.RESULT",
        "PUBLIC.IP",
        "PRIVATE.IP",
        "VIRTUAL.NETWORK.PUBLIC.IP",
        "DIRECT.ATTACHED.PUBLIC.IP",
        "LOCAL.STORAGE",
        "RESOURCE.LIMIT.EXCEEDED",
        "SYNC",
        "UPLOAD.FAILED",
        "OOBM.AUTH.ERROR",
        "HA.HOST",
    )
)
# State events label their resource type only: the FSM event names are many and add little.
STATE_RESOURCES = frozenset(
    {
        "VirtualMachine",
        "Volume",
        "Snapshot",
        "VMSnapshot",
        "Network",
        "Host",
        "Template",
        "DomainRouter",
        "ConsoleProxy",
        "SecondaryStorageVm",
        "KubernetesCluster",
    }
)
# The lifecycle catalogue other systems publish (the gateway's contracts).
LIFECYCLE_TYPES = frozenset(
    {
        "environment.created",
        "environment.extended",
        "environment.released",
        "maintenance.scheduled",
        "maintenance.started",
        "maintenance.ended",
        "dr.drill.requested",
    }
)


def subject_labels(subject: str) -> tuple[str, str, str]:
    """``(family, category, type)`` of a NATS subject or feed name; always from a finite set.

    ``csfabric.cloudstack.action.VM.CREATE`` → ``("cloudstack", "action", "VM.CREATE")``;
    an unknown event name → its type is ``other``; ``kafka:<topic>`` → ``("kafka", "", "")``
    (the bridge's topics are in its settings, and the ``service`` label tells bridges apart);
    a subject outside the contracts → ``("other", "", "")``.  Called for every message, so
    short subjects' answers are cached (at most 1024 of at most 200 characters each).
    """
    if len(subject) > _CACHED_LENGTH:
        return _labels(subject)
    return _cached_labels(subject)


def _labels(subject: str) -> tuple[str, str, str]:
    if subject in FEED_FAMILIES:
        return subject, NONE, NONE
    if subject.startswith("kafka:"):
        return "kafka", NONE, NONE
    tokens = subject.split(".")
    if len(tokens) < 2 or tokens[0] != "csfabric":
        return OTHER, NONE, NONE
    family, rest = tokens[1], tokens[2:]
    if family in FABRIC_FAMILIES:
        return family, NONE, NONE
    if family == "lifecycle":
        name = ".".join(rest)
        return family, NONE, name if name in LIFECYCLE_TYPES else OTHER
    if family != "cloudstack":
        return OTHER, NONE, NONE
    category = rest[0] if rest and rest[0] in CATEGORIES else OTHER
    name = ".".join(rest[1:])
    if category == "state":
        known = bool(rest[1:]) and rest[1] in STATE_RESOURCES
        return family, category, rest[1] if known else OTHER
    if category in ("action", "usage"):
        return family, category, name if name in ACTION_TYPES else OTHER
    if category == "alert":
        return family, category, name if name in ALERT_TYPES else OTHER
    return family, OTHER, OTHER


_CACHED = 1024
_CACHED_LENGTH = 200
_cached_labels = lru_cache(maxsize=_CACHED)(_labels)


def _label_sets() -> frozenset[tuple[str, str, str]]:
    cloudstack = [
        *product(["action", "usage"], [*ACTION_TYPES, OTHER]),
        *product(["alert"], [*ALERT_TYPES, OTHER]),
        *product(["state"], [*STATE_RESOURCES, OTHER]),
        (OTHER, OTHER),
    ]
    return frozenset(
        {
            *((f, NONE, NONE) for f in (*FEED_FAMILIES, *FABRIC_FAMILIES, "kafka", OTHER)),
            *(("lifecycle", NONE, t) for t in (*LIFECYCLE_TYPES, OTHER)),
            *(("cloudstack", c, t) for c, t in cloudstack),
        }
    )


# Every value :func:`subject_labels` can return: the bound on series per metric and service.
SUBJECT_LABEL_SETS = _label_sets()

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class CappedLabel:
    """Keeps the first ``cap`` distinct well-formed values of a label; the rest are ``other``.

    For values our own code names but cannot list ahead (exception class names): the
    usual handful stay visible, and an unusual flood cannot grow the series past the cap.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self.cap or _NAME.fullmatch(value) is None:
            return OTHER
        self._seen.add(value)
        return value
