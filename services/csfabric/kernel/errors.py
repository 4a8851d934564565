"""One error root for the whole fabric.

::

    CsfabricError
    ├── PermanentError        never retried; the message goes to the dead-letter subject
    │   ├── EnvelopeError     input is not a valid CloudEvent (reason names the defect)
    │   └── ConfigError       settings or a policy cannot be used as given
    └── TransientError        retried with exponential backoff, then dead-lettered
        ├── LeaseLost         this replica may no longer act under its lease (not done)
        └── RetryLater        not the message's fault: wait ``after`` s, budget untouched

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
    "ConfigError",
    "CsfabricError",
    "EnvelopeError",
    "LeaseLost",
    "PermanentError",
    "RetryLater",
    "TransientError",
]
