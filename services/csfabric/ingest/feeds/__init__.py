"""Ingest's feeds, one module each: webhook receiver, RabbitMQ queue, Kafka group, poller.

Each feed turns what its transport delivers into a ``NativeMessage`` for
:meth:`csfabric.ingest.handlers.Pipeline.ingest` and settles the message (answers, acks,
commits, moves the watermark) only once the pipeline returned.  The feeds must not know
each other (an independence contract): what they share is the pipeline and ``logic``.

No door of its own: ``csfabric.ingest.app`` imports the feed it starts by module
(``feeds.amqp`` and ``feeds.kafka`` only when configured, so their client libraries load
only then).
"""

__all__: list[str] = []
