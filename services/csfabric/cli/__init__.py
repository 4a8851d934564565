"""The ``csfabric`` command line: one package, one module per command group.

``_app`` only registers the groups (run, dev, doctor, policy, pause/resume, simulator,
schemas, status, events); each group's module owns its options and output.  The CLI is the top
layer: it may import any package of ours, and nothing imports it.  The door is
:func:`main`, the console-script entry point.
"""

from csfabric.cli._app import app, main

__all__ = ["app", "main"]
