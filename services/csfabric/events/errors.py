"""The events room's error (drawn in the one tree, :mod:`csfabric.kernel.errors`).

Imported through the door, ``csfabric.events``.
"""

from __future__ import annotations

from csfabric.kernel import PermanentError


class PayloadError(PermanentError):
    """An event's ``data`` does not fit its model (or it has none); ``reason`` says where."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


__all__ = ["PayloadError"]
