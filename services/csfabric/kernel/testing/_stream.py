"""One in-memory JetStream stream: sequences, limits, ``Nats-Msg-Id`` dedupe, expected-last
checks and rollups, answering with the errors nats-server gives (via nats-py's classes).

Times are the server's: ``mono`` for deadlines (TTL, dedupe window), ``wall`` for the
timestamps clients see.
"""

from __future__ import annotations

import copy
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from nats.js.api import DiscardPolicy, Header, PubAck, StreamConfig, StreamInfo, StreamState
from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError

from csfabric.kernel.bus import subject_matches

DEFAULT_DUPLICATE_WINDOW = 120.0  # what nats-server sets when a config says 0


@dataclass
class Stored:
    """A message as the stream keeps it."""

    seq: int
    subject: str
    data: bytes
    headers: dict[str, str] | None
    time: datetime
    mono: float

    @property
    def size(self) -> int:
        # nats-server's file store record: 22 + subject + (4 + headers) + payload + 8.
        headers = encode_headers(self.headers)
        return 30 + len(self.subject) + (4 + len(headers) if headers else 0) + len(self.data)


def encode_headers(headers: dict[str, str] | None) -> bytes:
    if not headers:
        return b""
    lines = "".join(f"{key}: {value}\r\n" for key, value in headers.items())
    return f"NATS/1.0\r\n{lines}\r\n".encode()


def normalized(config: StreamConfig) -> StreamConfig:
    """The config as nats-server reports it back: defaults filled in."""
    config = copy.deepcopy(config)
    config.max_msgs = -1 if config.max_msgs in (None, 0) else config.max_msgs
    config.max_bytes = -1 if config.max_bytes in (None, 0) else config.max_bytes
    config.max_age = config.max_age or 0.0
    config.max_msgs_per_subject = config.max_msgs_per_subject or -1
    config.duplicate_window = config.duplicate_window or DEFAULT_DUPLICATE_WINDOW
    config.num_replicas = config.num_replicas or 1
    config.discard = config.discard or DiscardPolicy.OLD
    config.allow_direct = bool(config.allow_direct)
    return config


def _full(what: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(code=503, err_code=10077, description=what)


class Stream:
    def __init__(self, config: StreamConfig, created: datetime) -> None:
        self.config = normalized(config)
        self.created = created
        self.messages: dict[int, Stored] = {}  # in sequence (and so in time) order
        self.last_seq = 0
        self.bytes = 0
        self._order: list[int] = []  # the sequences held, sorted: for iter_from
        self._subjects: dict[str, list[int]] = {}  # subject -> its sequences held, sorted
        self._ids: dict[str, tuple[int, float]] = {}  # Nats-Msg-Id -> (seq, at), in time order

    @property
    def name(self) -> str:
        return self.config.name or ""

    def captures(self, subject: str) -> bool:
        return any(subject_matches(p, subject) for p in self.config.subjects or [])

    def expire(self, mono: float) -> None:
        """Drop what is past ``max_age`` and dedupe ids past the window (oldest first)."""
        if self.config.max_age:
            cutoff = mono - self.config.max_age
            while self._order and self.messages[self._order[0]].mono <= cutoff:
                self._remove(self._order[0])
        cutoff = mono - self.config.duplicate_window
        while self._ids:
            msg_id, (_, at) = next(iter(self._ids.items()))
            if at > cutoff:
                break
            del self._ids[msg_id]

    def last_for(self, subject: str) -> Stored | None:
        seqs = self._subjects.get(subject)
        return self.messages[seqs[-1]] if seqs else None

    def iter_from(self, start: int) -> Iterator[int]:
        """Sequences held from ``start`` on, in order; removals meanwhile are skipped."""
        index = bisect_left(self._order, start)
        while index < len(self._order):
            seq = self._order[index]
            yield seq
            # The list may have changed under us: go on after the one just yielded.
            index = bisect_left(self._order, seq + 1)

    def first(self, pattern: str, start: int = 1) -> Stored | None:
        for message in self.by_subject(pattern, start):
            return message
        return None

    def by_subject(self, pattern: str, start: int = 1) -> Iterator[Stored]:
        if "*" not in pattern and ">" not in pattern:  # one subject: its own index
            for seq in list(self._subjects.get(pattern, ())):
                if seq >= start and seq in self.messages:
                    yield self.messages[seq]
            return
        for seq in self.iter_from(start):
            message = self.messages.get(seq)
            if message is not None and subject_matches(pattern, message.subject):
                yield message

    def store(
        self,
        subject: str,
        data: bytes,
        headers: dict[str, str] | None,
        *,
        wall: datetime,
        mono: float,
    ) -> tuple[PubAck, Stored | None]:
        """Store a message, or say why not; ``Stored`` is None for a duplicate."""
        self.expire(mono)
        # Plain strings, as they come back off the wire (nats-py passes Header enums).
        headers = (
            {str(getattr(k, "value", k)): str(v) for k, v in headers.items()} if headers else None
        )
        get = (headers or {}).get
        msg_id = get(Header.MSG_ID.value)
        if msg_id is not None and msg_id in self._ids:
            return PubAck(stream=self.name, seq=self._ids[msg_id][0], duplicate=True), None
        self._check_expected(subject, headers or {})
        rollup = get(Header.ROLLUP.value)
        if rollup is not None and not self.config.allow_rollup_hdrs:
            raise BadRequestError(code=400, err_code=10115, description="rollup not permitted")
        message = Stored(self.last_seq + 1, subject, data, headers, wall, mono)
        self._make_room(message)
        self.last_seq = message.seq
        self.messages[message.seq] = message
        self._order.append(message.seq)
        self._subjects.setdefault(subject, []).append(message.seq)
        self.bytes += message.size
        if msg_id is not None:
            self._ids[msg_id] = (message.seq, mono)
        if rollup == "sub":
            for seq in [m.seq for m in self.by_subject(subject) if m.seq != message.seq]:
                self._remove(seq)
        elif rollup == "all":
            for seq in [s for s in self.messages if s != message.seq]:
                self._remove(seq)
        return PubAck(stream=self.name, seq=message.seq), message

    def _check_expected(self, subject: str, headers: Mapping[str, str]) -> None:
        """``Nats-Expected-*`` headers: the compare-and-set that KV updates rely on."""
        get = headers.get
        wanted = get(Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value)
        if wanted is not None:
            last = self.last_for(subject)
            have = last.seq if last else 0
            if have != int(wanted):
                raise BadRequestError(
                    code=400, err_code=10071, description=f"wrong last sequence: {have}"
                )
        wanted = get(Header.EXPECTED_LAST_SEQUENCE.value)
        if wanted is not None and int(wanted) != self.last_seq:
            raise BadRequestError(
                code=400, err_code=10071, description=f"wrong last sequence: {self.last_seq}"
            )
        wanted = get(Header.EXPECTED_STREAM.value)
        if wanted is not None and wanted != self.name:
            raise BadRequestError(
                code=400, err_code=10060, description="expected stream does not match"
            )

    def _make_room(self, message: Stored) -> None:
        config = self.config
        per_subject = config.max_msgs_per_subject
        same = self._subjects.get(message.subject, [])
        if per_subject > 0 and same:
            same = list(same)
            if len(same) >= per_subject:
                if config.discard == DiscardPolicy.NEW and config.discard_new_per_subject:
                    raise _full("maximum messages per subject exceeded")
                for seq in same[: len(same) - per_subject + 1]:
                    self._remove(seq)
        max_msgs, max_bytes = config.max_msgs or -1, config.max_bytes or -1
        too_many = max_msgs > 0 and len(self.messages) + 1 > max_msgs
        too_big = max_bytes > 0 and self.bytes + message.size > max_bytes
        if config.discard == DiscardPolicy.NEW:
            if too_many:
                raise _full("maximum messages exceeded")
            if too_big:
                raise _full("maximum bytes exceeded")
            return
        while self._order:
            too_many = max_msgs > 0 and len(self.messages) + 1 > max_msgs
            too_big = max_bytes > 0 and self.bytes + message.size > max_bytes
            if not (too_many or too_big):
                break
            self._remove(self._order[0])

    def _remove(self, seq: int) -> None:
        gone = self.messages.pop(seq, None)
        if gone is None:
            return
        self.bytes -= gone.size
        del self._order[bisect_left(self._order, seq)]
        same = self._subjects[gone.subject]
        del same[bisect_left(same, seq)]
        if not same:
            del self._subjects[gone.subject]

    def purge(self, subject: str | None = None) -> int:
        doomed = [
            s
            for s, m in self.messages.items()
            if subject is None or subject_matches(subject, m.subject)
        ]
        for seq in doomed:
            self._remove(seq)
        return len(doomed)

    def get(self, seq: int | None, subject: str | None, next: bool) -> Stored:
        """``get_msg``: by sequence, last by subject, or next by subject from ``seq``."""
        found: Stored | None
        if next:
            found = self.first(subject or ">", seq or 1)
        elif subject is not None and not seq:
            found = self.last_for(subject)
        else:
            found = self.messages.get(seq or 0)
        if found is None:
            raise NotFoundError(code=404, err_code=10037, description="no message found")
        return found

    def info(self, consumers: int) -> StreamInfo:
        seqs = self._order
        state = StreamState(
            messages=len(seqs),
            bytes=self.bytes,
            # nats-server: 0 for a stream never written to, else one past the last.
            first_seq=seqs[0] if seqs else (self.last_seq + 1 if self.last_seq else 0),
            last_seq=self.last_seq,
            consumer_count=consumers,
        )
        return StreamInfo(config=copy.deepcopy(self.config), state=state, created=self.created)


__all__ = ["Stored", "Stream", "encode_headers", "normalized"]
