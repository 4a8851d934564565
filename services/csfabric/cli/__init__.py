"""The ``csfabric`` command line: one package, one module per command group.

The room: ``_app`` only registers the groups (run, dev, doctor, policy, pause/resume,
simulator, schemas, status, events); each group's module owns its options and output, and imports
what it needs when it runs, so ``--help`` stays fast.

The CLI is the top layer: it may import any package of ours, and nothing of ours may import
it (the layers contract).  Services are found through the kernel's registry, not imported
here.  This module is the door: :func:`main` is the console-script entry point and
:data:`app` the Typer application (tests drive it with ``CliRunner``).
"""

from csfabric.cli._app import app, main

__all__ = ["app", "main"]
