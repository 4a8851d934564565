"""The snapshots service: volume snapshots by ``SnapshotPolicy``, retention per zone.

The room: which volumes are due in which window, ``createSnapshot`` for each (spread over
the window, on the lease holder), retention of its own snapshots per zone, and an audit
record for every decision.  It must not know any other service (replication confirms the
copies it asks for); what both read is in :mod:`csfabric.dr`.

Its door is ``csfabric.snapshots.app:setup`` (entry point ``csfabric.services``).
"""

__all__: list[str] = []
