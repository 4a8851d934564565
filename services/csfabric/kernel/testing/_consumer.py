"""A durable pull consumer with explicit acks, as nats-server keeps one.

Deliveries, in order: first the messages due for redelivery (nak'd, or past ``ack_wait``
without an ack or ``in_progress``), lowest stream sequence first; then new messages from
the cursor on, while fewer than ``max_ack_pending`` are in hand.  ``max_deliver`` (> 0)
stops redelivering a message after that many deliveries.  Acks arrive as the reply-subject
payloads a real :class:`nats.aio.msg.Msg` publishes (``+ACK``, ``-NAK {"delay": ns}``,
``+WPI``, ``+TERM``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import datetime

from nats.js.api import ConsumerConfig, ConsumerInfo, DeliverPolicy, SequenceInfo

from csfabric.kernel.bus import subject_matches
from csfabric.kernel.testing._stream import Stored, Stream

DEFAULT_ACK_WAIT = 30.0


@dataclass
class Pending:
    cseq: int
    deliveries: int
    due: float  # server monotonic time of redelivery, unless acked or touched before


@dataclass
class Delivered:
    """One message handed to a fetch, with what its reply subject must carry."""

    message: Stored
    deliveries: int
    cseq: int
    pending: int


class PullConsumer:
    def __init__(self, stream: Stream, config: ConsumerConfig, created: datetime) -> None:
        self.stream = stream
        self.config = self._normalized(config)
        self.created = created
        self.name = config.durable_name or config.name or ""
        self.pending: dict[int, Pending] = {}
        self.cseq = 0
        self.last_delivered = 0  # highest stream sequence handed out
        self.ack_floor = (0, 0)  # (consumer seq, stream seq)
        self.cursor = self._start()

    @staticmethod
    def _normalized(config: ConsumerConfig) -> ConsumerConfig:
        config = copy.deepcopy(config)
        config.ack_wait = config.ack_wait or DEFAULT_ACK_WAIT
        config.max_deliver = config.max_deliver or -1
        config.max_ack_pending = config.max_ack_pending or 1000
        return config

    def update(self, config: ConsumerConfig) -> None:
        self.config = self._normalized(config)

    def _start(self) -> int:
        policy, stream = self.config.deliver_policy, self.stream
        if policy == DeliverPolicy.NEW:
            return stream.last_seq + 1
        if policy == DeliverPolicy.LAST:
            return max(stream.last_seq, 1)
        if policy == DeliverPolicy.BY_START_SEQUENCE:
            return self.config.opt_start_seq or 1
        if policy == DeliverPolicy.BY_START_TIME and self.config.opt_start_time:
            since = self.config.opt_start_time
            later = [s for s, m in stream.messages.items() if m.time >= since]
            return min(later) if later else stream.last_seq + 1
        return 1

    def wants(self, subject: str) -> bool:
        filters = self.config.filter_subjects or [self.config.filter_subject or ">"]
        return any(subject_matches(f, subject) for f in filters)

    def num_pending(self) -> int:
        messages = self.stream.messages
        return sum(1 for s in self.stream.iter_from(self.cursor) if self.wants(messages[s].subject))

    def next_due(self) -> float | None:
        return min((p.due for p in self.pending.values()), default=None)

    def take(self, batch: int, now: float) -> list[Delivered]:
        out: list[Delivered] = []
        for seq in sorted(s for s, p in self.pending.items() if p.due <= now):
            if len(out) >= batch:
                return out
            held = self.pending[seq]
            message = self.stream.messages.get(seq)
            max_deliver = self.config.max_deliver or -1
            if message is None or (max_deliver > 0 and held.deliveries >= max_deliver):
                del self.pending[seq]  # gone from the stream, or out of deliveries
                continue
            out.append(self._deliver(message, held.deliveries + 1, now))
        limit = self.config.max_ack_pending or -1
        for seq in self.stream.iter_from(self.cursor):
            if len(out) >= batch or (0 < limit <= len(self.pending)):
                break
            message = self.stream.messages[seq]
            self.cursor = seq + 1
            if self.wants(message.subject):
                out.append(self._deliver(message, 1, now))
        # Each message's metadata says how many were left after it (counted once a fetch).
        left = self.num_pending() if out else 0
        for index, item in enumerate(out):
            item.pending = left + len(out) - index - 1
        return out

    def _deliver(self, message: Stored, deliveries: int, now: float) -> Delivered:
        self.cseq += 1
        self.last_delivered = max(self.last_delivered, message.seq)
        self.pending[message.seq] = Pending(self.cseq, deliveries, now + self._wait(deliveries))
        return Delivered(message, deliveries, self.cseq, 0)

    def _wait(self, deliveries: int) -> float:
        backoff = self.config.backoff
        if backoff:
            return float(backoff[min(deliveries, len(backoff)) - 1])
        return float(self.config.ack_wait or DEFAULT_ACK_WAIT)

    def settle(self, sseq: int, payload: bytes, now: float) -> None:
        """Apply what a message's reply subject received."""
        held = self.pending.get(sseq)
        if held is None:
            return  # acked already, or redelivered and settled since: nothing to do
        verb, _, rest = payload.partition(b" ")
        if verb in (b"", b"+ACK", b"+TERM"):
            del self.pending[sseq]
            if not self.pending or sseq < min(self.pending):
                self.ack_floor = (held.cseq, sseq)
        elif verb == b"-NAK":
            delay = json.loads(rest).get("delay", 0) / 1e9 if rest else 0.0
            held.due = now + delay
        elif verb == b"+WPI":
            held.due = now + self._wait(held.deliveries)

    def info(self) -> ConsumerInfo:
        return ConsumerInfo(
            name=self.name,
            stream_name=self.stream.name,
            config=copy.deepcopy(self.config),
            created=self.created,
            delivered=SequenceInfo(consumer_seq=self.cseq, stream_seq=self.last_delivered),
            ack_floor=SequenceInfo(consumer_seq=self.ack_floor[0], stream_seq=self.ack_floor[1]),
            num_ack_pending=len(self.pending),
            # As nats-server counts it: messages in hand that were delivered more than once.
            num_redelivered=sum(1 for p in self.pending.values() if p.deliveries > 1),
            num_waiting=0,
            num_pending=self.num_pending(),
        )


__all__ = ["DEFAULT_ACK_WAIT", "Delivered", "Pending", "PullConsumer"]
