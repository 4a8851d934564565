"""How full the contract streams are: a gauge per stream, and an alert well before one refuses.

Every stream but ``CSFABRIC_ALERTS`` refuses new messages once at its ``max_bytes`` or
``max_msgs`` (see :mod:`.streams`), which pushes back on publishers.  That is the last line;
this watcher is the warning before it: each check sets ``csfabric_stream_fill_ratio{stream}``
and, for a stream past ``threshold``, publishes ``csfabric.alert.<service>.stream-full``
(to ``CSFABRIC_ALERTS``, which always has room).  The alert's ``Nats-Msg-Id`` names the
stream and a ``repeat`` window, so a stream that stays full is reported once per window
however many replicas watch it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from csfabric.kernel._logs import get_logger
from csfabric.kernel._ops import Metrics
from csfabric.kernel.bus._connection import Bus
from csfabric.kernel.bus._streams import DISCARD_OLD, STREAMS

log = get_logger(__name__)

ALERT = "stream-full"
THRESHOLD = 0.8
INTERVAL = 15.0  # fabric seconds between checks
REPEAT = 900.0  # fabric seconds between alerts about a stream that stays full


def fill_ratio(
    stored_bytes: int, max_bytes: int | None, messages: int, max_msgs: int | None
) -> float:
    """The larger of bytes/max_bytes and messages/max_msgs; 0 when neither is limited."""
    ratios = [0.0]
    if max_bytes is not None and max_bytes > 0:
        ratios.append(stored_bytes / max_bytes)
    if max_msgs is not None and max_msgs > 0:
        ratios.append(messages / max_msgs)
    return max(ratios)


def alert_subject(service: str) -> str:
    return f"csfabric.alert.{service}.{ALERT}"


class StreamWatch:
    """``await check()`` once, or ``run()`` until cancelled (e.g. under ``ctx.spawn``)."""

    def __init__(
        self,
        bus: Bus,
        metrics: Metrics,
        *,
        streams: Iterable[str] | None = None,
        threshold: float = THRESHOLD,
        interval: float = INTERVAL,
        repeat: float = REPEAT,
    ) -> None:
        self.bus, self.metrics = bus, metrics
        # The alert stream discards its oldest: it can never refuse, so there is no alert.
        self.streams = [s for s in (streams or STREAMS) if s not in DISCARD_OLD]
        self.threshold, self.interval, self.repeat = threshold, interval, repeat

    async def check(self) -> dict[str, float]:
        """Fill ratio of every watched stream (missing ones left out); alerts those past the
        threshold."""
        ratios: dict[str, float] = {}
        for stream in self.streams:
            try:
                info = await self.bus.js.stream_info(stream)
            except NotFoundError:
                continue
            config, state = info.config, info.state
            ratio = fill_ratio(state.bytes, config.max_bytes, state.messages, config.max_msgs)
            ratios[stream] = ratio
            self.metrics.set_stream_fill(stream, ratio)
            if ratio >= self.threshold:
                await self._alert(stream, ratio, info.state.bytes, info.state.messages, config)
        return ratios

    async def _alert(
        self, stream: str, ratio: float, stored: int, messages: int, config: StreamConfig
    ) -> None:
        now = self.bus.clock.now()
        window = int(now.timestamp() // self.repeat)
        payload = {
            "time": now.isoformat(),
            "service": self.bus.service,
            "alert": ALERT,
            "stream": stream,
            "ratio": round(ratio, 4),
            "threshold": self.threshold,
            "bytes": stored,
            "max_bytes": config.max_bytes,
            "messages": messages,
            "max_msgs": config.max_msgs,
            "reason": (
                f"{stream} is {ratio:.0%} full; at 100% it refuses new messages "
                "(publishers get StreamFullError, the webhook answers 503)"
            ),
        }
        ack = await self.bus.publish(
            alert_subject(self.bus.service),
            json.dumps(payload).encode(),
            msg_id=f"alert:{ALERT}:{stream}:{window}",
        )
        if not ack.duplicate:
            log.warning("stream %s is %.0f%% full", stream, 100 * ratio)

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # NATS away: the next check tries again
                log.info("stream check failed: %s", type(exc).__name__)
            await self.bus.clock.sleep(self.interval)


__all__ = ["ALERT", "INTERVAL", "REPEAT", "THRESHOLD", "StreamWatch", "alert_subject", "fill_ratio"]
