"""Children end with their supervisor, whatever ends it (Ctrl-C, SIGHUP, SIGTERM, SIGKILL).

Two things, both set in the child between fork and exec (so they hold for a Go
``nats-server`` as much as for a Python service, and survive the exec):

- the parent-death signal (Linux ``prctl(PR_SET_PDEATHSIG)``): the kernel sends the child
  SIGTERM the moment its parent dies, even by SIGKILL, which no handler in the parent
  can see.  The signal follows the *thread* that forked, so children are started from the
  event loop's thread, which lives as long as the supervisor.  A parent that died between
  fork and ``prctl`` is caught by comparing ``getppid()`` with the pid the parent had.
  A dying multi-threaded parent may hand the child to its other threads in turn, each
  sending the signal again: a second SIGTERM ends a service at once, which is fine here;
- a process group of its own: the terminal's Ctrl-C and hang-up reach the supervisor
  only, which then stops the services before the servers they use, instead of every
  process at once (nats-server first, say, with services still draining into it).

And a lifeline for the Python children (``csfabric run``): a pipe whose write end only
the supervisor holds, so its read end, passed to each child, reads end-of-file the moment
the supervisor is gone, however it went.  The child's watcher (:func:`watch_lifeline`)
then stops the service as SIGTERM would and, if that has not ended the process within
:data:`GRACE` seconds, exits: its NATS server dies at the same moment, and a clean stop
that waits for it would keep an orphan for a minute.  Work cut short is what a crash
leaves, which the fabric's idempotency and redelivery are for.

On a system without ``prctl`` (not Linux) only the process group and the lifeline hold:
there a SIGKILLed supervisor leaves its server children (nats-server …) running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

_PR_SET_PDEATHSIG = 1
LIFELINE_ENV = "CSFABRIC_LIFELINE_FD"
GRACE = 5.0  # seconds a Python child may spend stopping once its supervisor is gone


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


class Lifeline:
    """The supervisor's end: a pipe both of whose ends are closed on exec by default, so
    only the children it is passed to hold the read end, and nobody else the write end."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()

    def child_kwargs(self) -> dict[str, Any]:
        return {**tie_kwargs(), "pass_fds": (self.read_fd,)}

    def env(self) -> dict[str, str]:
        return {LIFELINE_ENV: str(self.read_fd)}

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def watch_lifeline(grace: float = GRACE) -> bool:
    """In a child of ``csfabric dev``: stop once the supervisor is gone (see the module doc).

    Returns whether there was a lifeline to watch.  The watcher is a daemon thread, so a
    stuck event loop cannot keep it from acting.
    """
    raw = os.environ.pop(LIFELINE_ENV, None)  # not for our own children
    if not raw or not raw.isdigit():
        return False
    fd = int(raw)

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 1):
                pass
        os.kill(os.getpid(), signal.SIGTERM)  # the service's own clean stop
        time.sleep(grace)
        os._exit(1)

    threading.Thread(target=watch, name="csfabric-lifeline", daemon=True).start()
    return True


__all__ = ["GRACE", "LIFELINE_ENV", "Lifeline", "die_with_parent", "tie_kwargs", "watch_lifeline"]
