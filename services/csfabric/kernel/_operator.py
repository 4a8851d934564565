"""Who issued an operator command: recorded on every audit record and control event.

``CSFABRIC_OPERATOR`` wins so that automation (CI, a web console acting for a signed-in
user) can name the real principal, e.g. ``token:alice@example.org``; otherwise the OS
user running the CLI is the best identity we have, prefixed so the two cannot be confused.
"""

from __future__ import annotations

import getpass
import os

OPERATOR_ENV = "CSFABRIC_OPERATOR"


def current_operator() -> str:
    """``$CSFABRIC_OPERATOR`` when set, else ``os:<login name>``."""
    explicit = os.environ.get(OPERATOR_ENV, "").strip()
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container uid without a passwd entry
        user = f"uid{os.getuid()}"
    return f"os:{user}"


__all__ = ["OPERATOR_ENV", "current_operator"]
