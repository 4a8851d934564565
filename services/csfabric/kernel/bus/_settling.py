"""How a consumed message is settled: ack, release (nak with a delay), or dead letter + ack.

A message is acked only once it was handled or its dead letter is stored; a dead letter
that could not be stored is remembered (bounded) and the message released, so that its
redelivery stores the letter without calling the handler again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from nats.aio.msg import Msg

from csfabric.kernel._logs import clip
from csfabric.kernel.bus._connection import Bus
from csfabric.kernel.bus._delivery import Delivery, backoff
from csfabric.kernel.bus._dlq import DeadLetter, dlq_subject
from csfabric.kernel.bus._options import ConsumerOptions

__all__ = ["UNSENT_MAX", "Settling"]

log = logging.getLogger("csfabric.kernel.bus.consumer")

# Dead letters decided but not stored (the DLQ publish failed), by (stream, sequence): the
# redelivery stores them without calling the handler again.  Bounded: one that is
# forgotten is merely handled once more, and dead-lettered at once if it fails again.
UNSENT_MAX = 1024


class Settling:
    """The settling half of a :class:`~.consumer.Consumer` (its fields are the consumer's)."""

    bus: Bus
    durable: str
    options: ConsumerOptions
    handled: int
    dead_lettered: int
    _unsent: OrderedDict[tuple[str | None, int | None], DeadLetter]

    async def _ack(self, msg: Msg, delivery: Delivery) -> None:
        try:
            await msg.ack()
            self.handled += 1
        except Exception as exc:
            # The ack did not reach the server: the message comes back after ack_wait and
            # the idempotency keys make the second handling harmless.
            log.warning("could not ack %s: %s", delivery.subject, type(exc).__name__)

    async def _release(self, msg: Msg, delay: float) -> float:
        """Nak: the server redelivers ``msg`` after ``delay`` fabric seconds."""
        try:
            await msg.nak(delay=self.bus.clock.to_real(delay))
        except Exception as exc:  # not naked: it comes back after ack_wait instead
            log.warning("could not release %s: %s", msg.subject, type(exc).__name__)
        return float(delay)

    async def _dead_letter_then_ack(self, msg: Msg, delivery: Delivery, letter: DeadLetter) -> None:
        """Ack only once the dead letter is stored; else nak, so that it comes back."""
        try:
            await self._store(delivery, letter)
        except Exception as exc:
            key = (delivery.stream, delivery.stream_seq)
            self._unsent[key] = letter
            while len(self._unsent) > UNSENT_MAX:
                self._unsent.popitem(last=False)
            delay = backoff(
                delivery.deliveries, self.options.backoff_base, self.options.backoff_cap
            )
            log.warning(
                "could not store the dead letter of %s (%s); redelivery in %.0fs",
                delivery.subject,
                type(exc).__name__,
                delay,
            )
            await self._release(msg, delay)
            return
        try:
            await msg.ack()
            self.dead_lettered += 1
        except Exception as exc:
            # Redelivered after ack_wait: dead-lettered again under the same Nats-Msg-Id,
            # which the DLQ stream's duplicate window keeps to one record.
            log.warning("could not ack %s: %s", delivery.subject, type(exc).__name__)

    def _letter(self, delivery: Delivery, error: BaseException) -> DeadLetter:
        return DeadLetter(
            service=self.bus.service,
            reason=clip(str(error) or type(error).__name__, 1500, one_line=True),
            error=type(error).__name__,
            subject=delivery.subject,
            deliveries=delivery.deliveries,
            stream=delivery.stream,
            stream_seq=delivery.stream_seq,
            time=self.bus.clock.now(),
            original=b"",  # the bytes are the delivery's: not kept twice in memory
        )

    def _unsettled(self, delivery: Delivery) -> DeadLetter:
        """The dead letter of a message delivered far past the budget without being settled.

        The server bound is unlimited, so this is what bounds a message that ends the
        process each time it is handled (or whose dead letter the replica that decided it
        could not store, and that another replica now sees, without the reason).
        """
        return DeadLetter(
            service=self.bus.service,
            reason=(
                f"delivered {delivery.deliveries} times without being settled: the handler "
                "may end the process, or an earlier dead letter could not be stored"
            ),
            error="RedeliveryLimit",
            subject=delivery.subject,
            deliveries=delivery.deliveries,
            stream=delivery.stream,
            stream_seq=delivery.stream_seq,
            time=self.bus.clock.now(),
            original=b"",
        )

    async def dead_letter(self, delivery: Delivery, error: BaseException) -> None:
        """Publish the dead letter of ``delivery``; raises when it could not be stored."""
        await self._store(delivery, self._letter(delivery, error))

    async def _store(self, delivery: Delivery, letter: DeadLetter) -> None:
        msg_id = f"dlq:{delivery.stream}:{delivery.stream_seq}:{self.durable}"
        await self.bus.publish(
            dlq_subject(self.bus.service), delivery.raw, msg_id=msg_id, headers=letter.headers()
        )
        if self.bus.metrics is not None:
            self.bus.metrics.dead_letter(letter.error)
        log.warning(
            "dead-lettered %s after %d deliveries: %s",
            letter.subject,
            letter.deliveries,
            letter.reason,
        )
