"""The CloudStack client's errors (drawn in the one tree, :mod:`csfabric.kernel.errors`).

Imported through the door, ``csfabric.cloudstack``.  :func:`~._transport.classify` picks
the class for an answer; the simulator's own :class:`~.simulator.ApiError` is the answer
CloudStack renders, not one of these.
"""

from __future__ import annotations

from csfabric.kernel import OutcomeUnknownError, PermanentError, TransientError


class CloudStackApiError(PermanentError):
    """CloudStack refused the call (401 auth, 431 bad parameter, 432 unknown command, ...)."""

    def __init__(
        self, command: str, errorcode: int, errortext: str, cserrorcode: int | None = None
    ) -> None:
        super().__init__(f"{command}: {errorcode} {errortext}")
        self.command = command
        self.errorcode = errorcode
        self.cserrorcode = cserrorcode
        self.errortext = errortext


class CloudStackTransientError(TransientError):
    """Worth retrying later: 530/533-537, throttling, a timeout, no connection.

    ``errorcode`` is ``None`` when no answer came back at all.
    """

    def __init__(
        self,
        command: str,
        errorcode: int | None,
        errortext: str,
        cserrorcode: int | None = None,
    ) -> None:
        code = f"{errorcode} " if errorcode is not None else ""
        super().__init__(f"{command}: {code}{errortext}")
        self.command = command
        self.errorcode = errorcode
        self.cserrorcode = cserrorcode
        self.errortext = errortext


class CloudStackOutcomeUnknown(CloudStackTransientError, OutcomeUnknownError):
    """A mutating command may or may not have run: never re-send it, reconcile instead.

    Raised for a timeout or a dropped connection after the request was sent, a proxy's
    502/504 without CloudStack's answer, and any failure while waiting for a job that was
    accepted.  The client never retries these itself; ``ActionLedger`` records them as
    "outcome unknown" and the next attempt asks its ``reconcile`` step (the resource tagged
    ``csfabric:key``) instead of calling again.
    """


class CloudStackJobTimeout(CloudStackOutcomeUnknown):
    """The job did not finish within ``job_timeout``; it may still finish (reconcile)."""

    def __init__(self, command: str, jobid: str, waited: float) -> None:
        super().__init__(command, None, f"job {jobid} still pending after {waited:g}s")
        self.jobid = jobid


__all__ = [
    "CloudStackApiError",
    "CloudStackJobTimeout",
    "CloudStackOutcomeUnknown",
    "CloudStackTransientError",
]
