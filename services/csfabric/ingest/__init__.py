"""Ingest: every CloudStack event feed onto the JetStream backbone, once, as CloudEvents.

The room, in the skeleton every service shares: ``settings.py`` (``CSFABRIC_INGEST_*``),
``logic/`` (pure decisions, its own door), ``handlers.py`` (the pipeline every feed calls:
parse, publish with the event id as ``Nats-Msg-Id``, dead-letter what cannot be parsed),
``feeds/`` (webhook, RabbitMQ, Kafka, the ``listEvents`` poller) and ``app.py``.
README.md lists the settings and what each feed counts as done.

It must not know any other service (the services' independence contract) nor the CLI or
``csfabric dev`` above it; what it shares with other services (parsing CloudStack's native
messages) lives in ``csfabric.cloudstack``.

A service's door is its entry point, not this module: ``csfabric.ingest.app:setup``
(``[project.entry-points."csfabric.services"]``), run by ``csfabric run ingest``.  This
module exports nothing, so importing ``csfabric.ingest.logic`` stays free of brokers.
"""

__all__: list[str] = []
