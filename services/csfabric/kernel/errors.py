"""One error root for the whole fabric, and the tree of every error class, wherever it lives.

::

    CsfabricError                         kernel/errors.py (this file; all of them through
    │                                     the door csfabric.kernel)
    ├── PermanentError                    never retried: the message goes to the dead-letter
    │   │                                 subject with the reason
    │   ├── EnvelopeError                 input is not a valid CloudEvent (the reason says why)
    │   ├── ActionRefused                 an earlier attempt of this action was refused for good
    │   ├── PayloadError                  events/errors.py: an event's data does not fit its model
    │   ├── ConfigError                   settings or a policy cannot be used as given
    │   │   ├── PolicyLoadError           kernel/policy/errors.py: invalid policy files, every
    │   │   │                             problem listed (a PolicyProblem each)
    │   │   ├── NatsServerNotFoundError   devstack/errors.py: no nats-server binary (and the fix)
    │   │   └── MissingDependencyError    devstack/errors.py: what ``--with`` asked for is missing
    │   └── CloudStackApiError            cloudstack/errors.py: CloudStack refused the call (4xx)
    └── TransientError                    retried with backoff, then dead-lettered
        ├── LeaseLost                     this replica may no longer act under its lease
        ├── RetryLater                    not the message's fault: wait ``after`` s, for free
        ├── OutcomeUnknownError           the call may have acted: reconcile, never re-send
        │   └── CloudStackOutcomeUnknown  cloudstack/errors.py (also a CloudStackTransientError)
        │       └── CloudStackJobTimeout  cloudstack/errors.py: a job still pending at its timeout
        ├── CloudStackTransientError      cloudstack/errors.py: 530/533-537, throttling, no answer
        ├── StreamFullError               kernel/bus/_connection.py: a stream at its limits
        │                                 (back-pressure: the caller keeps the message)
        ├── PolicyConflictError           kernel/policy/errors.py: a policy changed between
        │                                 our read and our write; nothing was applied
        └── BlastStateUnavailable         kernel/policy/errors.py: the blast-radius window
                                          cannot be read or written; the action must wait

    ApiError (Exception)                  cloudstack/simulator/_errors.py: the *simulator's*
                                          CloudStack error answer; not ours to raise, so
                                          outside the tree (the client turns the answer it
                                          renders into a CloudStack*Error above)

Each area keeps its classes in its own ``errors.py`` and exports them from its door
(``csfabric.kernel``, ``csfabric.kernel.bus``, ``csfabric.kernel.policy``,
``csfabric.events``, ``csfabric.cloudstack``, ``csfabric.devstack``); import them from
there.  StreamFullError stays beside the publish that raises it (the bus's errors are that
one class).

Handlers raise these; the bus decides ack / nak-with-delay / dead-letter from the class
alone, so no handler ever talks to the broker about failure.  Any other exception is
treated as transient (a bug should be retried a few times and then be visible in the DLQ,
not kill the consumer).
"""

from __future__ import annotations


class CsfabricError(Exception):
    """Root of every error csfabric raises on purpose."""


class PermanentError(CsfabricError):
    """Retrying cannot help: dead-letter at once with the reason."""


class EnvelopeError(PermanentError):
    """The bytes are not an acceptable CloudEvent; ``reason`` says exactly why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConfigError(PermanentError):
    """A setting or policy value cannot be used."""


class TransientError(CsfabricError):
    """Might succeed later (timeouts, a broker or CloudStack briefly away)."""


class LeaseLost(TransientError):
    """The lease's term is over (or cannot be proven current): the side effect was not done.

    Transient because the work is not wrong, only no longer ours: the holder of the next
    term (this replica or another) does it.  ``acted`` is True when it is raised *after* the
    side effect (``Lease.fenced()`` at its exit): then it proves nothing about whether the
    act happened, and an action ledger records the outcome as unknown, not failed.
    """

    def __init__(self, reason: str, *, acted: bool = False) -> None:
        super().__init__(reason)
        self.acted = acted


class OutcomeUnknownError(TransientError):
    """The call may have acted: the ledger reconciles it and never re-sends it blindly."""


class ActionRefused(PermanentError):
    """An earlier attempt of this action was refused for good; it is not tried again."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"action {key[:12]} was refused earlier: {reason}")
        self.key = key
        self.reason = reason


class RetryLater(TransientError):
    """Someone else's work on this message is still running (an action's call in flight):
    try again after ``after`` fabric seconds without spending one of the message's attempts.

    The consumer honours it only while it may keep the message in hand (its ``max_hold``);
    beyond that it counts like any other transient error, so nothing waits for ever.
    """

    def __init__(self, reason: str, after: float) -> None:
        super().__init__(reason)
        self.after = max(0.0, after)


__all__ = [
    "ActionRefused",
    "ConfigError",
    "CsfabricError",
    "EnvelopeError",
    "LeaseLost",
    "OutcomeUnknownError",
    "PermanentError",
    "RetryLater",
    "TransientError",
]
