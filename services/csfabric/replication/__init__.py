"""The replication service: DR copies confirmed, missing ones made, the RPO watched.

The room: for each ``SnapshotPolicy`` with ``copyTo``, whether every volume's newest
snapshot is complete in the DR zone, ``copySnapshot`` for what ``createSnapshot zoneids``
did not copy, copy lag, and ``csfabric.alert.replication.rpo-breach`` (and its recovery).
It must not know any other service; what it shares with snapshots is in :mod:`csfabric.dr`.

Its door is ``csfabric.replication.app:setup`` (entry point ``csfabric.services``).
"""

__all__: list[str] = []
