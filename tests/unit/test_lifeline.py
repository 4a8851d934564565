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


def _watch_in_child(setup: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import os, threading\n"
        f"{setup}\n"
        "from csfabric.devstack import watch_lifeline\n"
        "print(watch_lifeline(grace=0.0), flush=True)\n"
        "print(sorted(t.name for t in threading.enumerate()), flush=True)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_stale_lifeline_variable_is_not_taken_for_a_dead_supervisor() -> None:
    """``CSFABRIC_LIFELINE_FD`` copied into a shell (from a dev child's environment, say)
    names a descriptor that is closed or no pipe: that is no lifeline, and the service
    must not stop itself at once as if its supervisor had died."""
    for setup in (
        "os.environ['CSFABRIC_LIFELINE_FD'] = '987'",  # closed
        "os.environ['CSFABRIC_LIFELINE_FD'] = str(os.open(os.devnull, os.O_RDONLY))",  # EOF
    ):
        done = _watch_in_child(setup)
        assert done.returncode == 0, (setup, done.returncode, done.stderr)
        assert done.stdout.splitlines()[0] == "False", setup
        assert "csfabric-lifeline" not in done.stdout


def test_a_real_lifeline_is_watched() -> None:
    done = _watch_in_child("r, w = os.pipe(); os.environ['CSFABRIC_LIFELINE_FD'] = str(r)")
    assert done.stdout.splitlines()[0] == "True", done.stderr
    assert "csfabric-lifeline" in done.stdout
