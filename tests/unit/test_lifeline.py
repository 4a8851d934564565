"""The parts of :mod:`csfabric.devstack._lifeline` a child runs, in a real child process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from unittest import mock

from csfabric.devstack import _lifeline


async def test_a_child_orphaned_before_prctl_ends_although_its_parent_handled_sigterm() -> None:
    """The supervisor handles SIGTERM (loop.add_signal_handler) before it spawns anything, and
    a forked child keeps that handler until exec: the "orphaned before armed" signal must not
    be swallowed by it, or the child execs and outlives its parent."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: None)  # as csfabric dev does
    try:
        # A parent pid that is not the child's: the child sees itself orphaned already.
        with mock.patch.object(_lifeline.os, "getpid", return_value=os.getppid()):
            arm = _lifeline.die_with_parent()
        assert arm is not None
        proc = subprocess.Popen(  # noqa: ASYNC220 (a fork, then exec or death: microseconds)
            [sys.executable, "-c", "print('outlived its parent')"],
            stdout=subprocess.PIPE,
            preexec_fn=arm,
        )
        out, _ = proc.communicate(timeout=30)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
    assert out == b""
    assert proc.returncode == -signal.SIGTERM
