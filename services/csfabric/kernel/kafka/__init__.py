"""The Kafka bridge, both directions, with the backbone's CloudEvents envelope.

It must not know policies (kafka and policy are independent siblings in the kernel layers
contract), any service, or CloudStack.  This module is the door: import these names from
``csfabric.kernel.kafka``, never from its ``_private`` modules.

In (:class:`KafkaToNats`): offsets are committed only after every JetStream publish of a
fetched batch was acknowledged, so a restart loses nothing, and what it reads twice the
duplicate window drops (``Nats-Msg-Id`` = event id).  Records that are not CloudEvents go to
``csfabric.dlq.<service>`` at once, records whose handling fails otherwise after
``max_attempts_in`` (5) attempts; "NATS is away" only pauses the bridge.  A new group starts
at ``latest`` (``CSFABRIC_KAFKA_OFFSET_RESET``; ``earliest`` replays the topic).
Out (:class:`NatsToKafka`): a kernel :class:`Consumer` whose handler awaits the ``acks=all``
send, so JetStream lets go of an event only once Kafka holds it (at least once: readers
dedupe on ``ce_id``).  Keys come from :func:`record_key`, so one
resource stays on one partition, in order.
"""

from csfabric.kernel.kafka._group import CommitAfterHandling
from csfabric.kernel.kafka._inbound import KafkaToNats
from csfabric.kernel.kafka._outbound import NatsToKafka
from csfabric.kernel.kafka._settings import DEFAULT_BOOTSTRAP, KafkaBridgeSettings, record_key

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "CommitAfterHandling",
    "KafkaBridgeSettings",
    "KafkaToNats",
    "NatsToKafka",
    "record_key",
]
