"""Children end with their supervisor, whatever ends it (Ctrl-C, SIGHUP, SIGTERM, SIGKILL).

Two things, both set in the child between fork and exec (so they hold for a Go
``nats-server`` as much as for a Python service, and survive the exec):

- the parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``): the kernel sends the child
  SIGTERM the moment its parent dies, even by SIGKILL, which no handler in the parent
  can see.  The signal follows the *thread* that forked, so children are started from the
  event loop's thread, which lives as long as the supervisor.  A parent that died between
  fork and ``prctl`` is caught by comparing ``getppid()`` with the pid the parent had;
- a process group of its own: the terminal's Ctrl-C and hang-up reach the supervisor
  only, which then stops the services before the servers they use, instead of every
  process at once (nats-server first, say, with services still draining into it).

On a system without ``prctl`` (not Linux) only the second holds: a SIGKILLed supervisor
there leaves its children running.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1


def _find_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _find_prctl()


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn``: the child gets ``signum`` when this process ends (None: no prctl).

    Only async-signal-safe work happens in the child: one foreign call and two syscalls.
    """
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:  # we were orphaned before the signal was armed
            os.kill(os.getpid(), signum)

    return arm


def tie_kwargs() -> dict[str, Any]:
    """The ``Popen`` / ``create_subprocess_exec`` keywords of a child that ends with us."""
    return {"preexec_fn": die_with_parent(), "process_group": 0}


__all__ = ["die_with_parent", "tie_kwargs"]
