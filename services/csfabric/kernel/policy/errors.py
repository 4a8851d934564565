"""The policy room's errors (drawn in the one tree, :mod:`csfabric.kernel.errors`).

Imported through the door, ``csfabric.kernel.policy``; the kernel's root classes come from
:mod:`csfabric.kernel.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from csfabric.kernel.errors import ConfigError, TransientError


@dataclass(frozen=True)
class PolicyProblem:
    """One mistake in one policy file: where it is and what is wrong."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class PolicyLoadError(ConfigError):
    """Some policies are invalid; ``problems`` lists every one, in file and line order."""

    def __init__(self, problems: Sequence[PolicyProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class PolicyConflictError(TransientError):
    """Someone else changed a policy between our read and our write; nothing was applied."""


class BlastStateUnavailable(TransientError):
    """The shared window could not be read or written; the action must not go ahead."""


__all__ = ["BlastStateUnavailable", "PolicyConflictError", "PolicyLoadError", "PolicyProblem"]
