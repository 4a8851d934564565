"""The simulator's sinks: one protocol for the emitter and the feeds."""

from __future__ import annotations

from csfabric.cloudstack import simulator
from csfabric.cloudstack.simulator import _emit, _feeds


def test_the_emitter_and_the_feeds_share_one_event_sink() -> None:
    """Two protocols of one name (emit only, and emit + close) let a sink fit the door's
    ``EventSink`` and not the one ``Simulator(sinks=…)`` was typed with, or the reverse."""
    assert _emit.EventSink is _feeds.EventSink is simulator.EventSink
    assert {"emit", "close"} <= set(vars(simulator.EventSink))
