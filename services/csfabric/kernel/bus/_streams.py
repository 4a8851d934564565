"""The JetStream streams of the contracts, created idempotently with file storage and limits.

A full stream refuses new messages (``DiscardPolicy.NEW``) rather than deleting the oldest:
what it holds is unconsumed events, audit records, dead letters, operator commands and policy
history, none of which may vanish silently.  The publisher gets the refusal
(``StreamFullError``) and pushes back on its source; ``kernel.streamwatch`` raises an alert
well before that point.  Only ``CSFABRIC_ALERTS`` keeps discarding the oldest: alerts are
signals whose newest matter most, and the "stream full" alert itself must always find room.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from csfabric.kernel._settings import StreamLimits

STREAMS: dict[str, tuple[str, ...]] = {
    "CSFABRIC_EVENTS": ("csfabric.cloudstack.>", "csfabric.lifecycle.>"),
    "CSFABRIC_AUDIT": ("csfabric.audit.>",),
    "CSFABRIC_ALERTS": ("csfabric.alert.>",),
    "CSFABRIC_CONTROL": ("csfabric.control.>",),
    "CSFABRIC_DLQ": ("csfabric.dlq.>",),
    "CSFABRIC_REPLAY": ("csfabric.replay.>",),
    "CSFABRIC_POLICIES": ("csfabric.policy.>",),
}

# Streams that may drop their oldest message when full; every other one refuses new ones.
DISCARD_OLD: frozenset[str] = frozenset({"CSFABRIC_ALERTS"})


def discard_policy(name: str) -> DiscardPolicy:
    """``OLD`` for the alert stream only; ``NEW`` (back-pressure) for every other stream."""
    return DiscardPolicy.OLD if name in DISCARD_OLD else DiscardPolicy.NEW


def stream_config(name: str, subjects: tuple[str, ...], limits: StreamLimits) -> StreamConfig:
    return StreamConfig(
        name=name,
        subjects=list(subjects),
        storage=StorageType.FILE,
        max_age=limits.max_age_seconds,
        max_bytes=limits.max_bytes,
        # JetStream refuses a dedupe window longer than the retention.
        duplicate_window=min(limits.duplicate_window_seconds, limits.max_age_seconds),
        num_replicas=limits.replicas,
        discard=discard_policy(name),
    )


async def ensure_streams(
    js: JetStreamContext,
    limits: StreamLimits | None = None,
    streams: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, str]:
    """Create or update every stream; returns ``{name: "created" | "updated" | "unchanged"}``.

    Safe to run from every replica at every start: an existing stream is only updated when
    its subjects, limits or discard policy differ from the settings (a stream created by an
    older release with ``DiscardPolicy.OLD`` is switched to ``NEW``).
    """
    limits = limits or StreamLimits()
    result: dict[str, str] = {}
    for name, subjects in (streams or STREAMS).items():
        wanted = stream_config(name, subjects, limits)
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(wanted)
            result[name] = "created"
            continue
        have = info.config
        if (
            sorted(have.subjects or []) == sorted(subjects)
            and have.max_age == wanted.max_age
            and have.max_bytes == wanted.max_bytes
            and have.duplicate_window == wanted.duplicate_window
            and (have.num_replicas or 1) == wanted.num_replicas
            and (have.discard or DiscardPolicy.OLD) == wanted.discard
        ):
            result[name] = "unchanged"
        else:
            await js.update_stream(wanted)
            result[name] = "updated"
    return result


def stream_for_subject(subject: str) -> str | None:
    """Which contract stream stores ``subject`` (None when no stream does)."""
    for name, patterns in STREAMS.items():
        if any(subject_matches(pattern, subject) for pattern in patterns):
            return name
    return None


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` one or more trailing tokens."""
    want, have = pattern.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or (token != "*" and token != have[index]):
            return False
    return len(want) == len(have)


def subject_intersection(a: str, b: str) -> str | None:
    """The subjects both NATS patterns match, as one pattern (None: none)."""
    x, y = a.split("."), b.split(".")
    out: list[str] = []
    for i in range(max(len(x), len(y))):
        s, t = (x[i] if i < len(x) else None), (y[i] if i < len(y) else None)
        if s == ">" and t is not None:
            return ".".join(out + y[i:])
        if t == ">" and s is not None:
            return ".".join(out + x[i:])
        if s is None or t is None or (s != t and "*" not in (s, t)):
            return None
        out.append(t if s == "*" else s)
    return ".".join(out)


__all__ = [
    "DISCARD_OLD",
    "STREAMS",
    "discard_policy",
    "ensure_streams",
    "stream_config",
    "stream_for_subject",
    "subject_intersection",
    "subject_matches",
]
