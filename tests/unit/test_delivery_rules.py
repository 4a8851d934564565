"""Ack, retry or dead-letter: decided from the handler's outcome alone."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from pathlib import Path

import pytest
from csfabric.kernel import (
    EnvelopeError,
    FabricSettings,
    PermanentError,
    TransientError,
    register_secret,
)
from csfabric.kernel.bus import DeadLetter
from csfabric.kernel.bus._consumer import ConsumerOptions, Verdict, backoff, verdict
from csfabric.kernel.bus._streams import stream_for_subject
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("error", "deliveries", "expected"),
    [
        (None, 1, Verdict.ACK),
        (None, 5, Verdict.ACK),
        (PermanentError("no"), 1, Verdict.DEAD_LETTER),
        (EnvelopeError("bad"), 1, Verdict.DEAD_LETTER),
        (TransientError("later"), 1, Verdict.RETRY),
        (RuntimeError("bug"), 4, Verdict.RETRY),
        (TransientError("later"), 5, Verdict.DEAD_LETTER),
        (RuntimeError("bug"), 6, Verdict.DEAD_LETTER),
    ],
)
def test_verdict(error: Exception | None, deliveries: int, expected: Verdict) -> None:
    assert verdict(error, deliveries, max_deliver=5) is expected


@given(st.integers(1, 100), st.integers(1, 20))
def test_retries_are_bounded(deliveries: int, max_deliver: int) -> None:
    outcome = verdict(TransientError("x"), deliveries, max_deliver)
    assert (outcome is Verdict.RETRY) == (deliveries < max_deliver)


@given(st.integers(1, 60))
def test_backoff_grows_and_is_capped(deliveries: int) -> None:
    delay = backoff(deliveries, base=0.5, cap=30.0, jitter=0.2)
    expected = min(30.0, 0.5 * 2 ** (deliveries - 1))
    assert expected * 0.8 <= delay <= expected * 1.2


def test_dead_letter_round_trip_and_one_line_redacted_reason() -> None:
    register_secret("s3cr3t-hmac-value")
    letter = DeadLetter(
        service="ingest",
        reason="bad signature\nexpected s3cr3t-hmac-value for apikey=ABC123",
        error="PermanentError",
        subject="csfabric.cloudstack.action.VM.CREATE",
        deliveries=3,
        stream="CSFABRIC_EVENTS",
        stream_seq=42,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        original=b"\x00raw bytes",
    )
    headers = letter.headers()
    assert all("\n" not in value for value in headers.values())
    assert "s3cr3t-hmac-value" not in "".join(headers.values())
    assert "ABC123" not in "".join(headers.values())
    back = DeadLetter.from_message(b"\x00raw bytes", headers)
    assert back.deliveries == 3
    assert back.stream_seq == 42
    assert back.original == b"\x00raw bytes"
    assert back.reason.startswith("bad signature expected ***")


@pytest.mark.parametrize(
    ("subject", "stream"),
    [
        ("csfabric.cloudstack.action.VM.CREATE", "CSFABRIC_EVENTS"),
        ("csfabric.lifecycle.environment.created", "CSFABRIC_EVENTS"),
        ("csfabric.audit.snapshots", "CSFABRIC_AUDIT"),
        ("csfabric.alert.replication.rpo-breach", "CSFABRIC_ALERTS"),
        ("csfabric.control.sandbox", "CSFABRIC_CONTROL"),
        ("csfabric.dlq.ingest", "CSFABRIC_DLQ"),
        ("csfabric.replay.audit-2026.x", "CSFABRIC_REPLAY"),
        ("csfabric.audit", None),
        ("other.thing", None),
    ],
)
def test_every_contract_subject_has_its_stream(subject: str, stream: str | None) -> None:
    assert stream_for_subject(subject) == stream


def test_consumer_defaults_are_the_shared_settings_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CSFABRIC_MAX_DELIVER", raising=False)
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path))  # no dev.json of a real dev run
    plain, configured = ConsumerOptions(), ConsumerOptions.from_settings(FabricSettings())
    assert plain.max_deliver == configured.max_deliver == FabricSettings().max_deliver
    assert plain.max_event_bytes == configured.max_event_bytes
    # One backoff: what the consumer uses is backoff()'s default, 1 s doubling to 60 s.
    defaults = inspect.signature(backoff).parameters
    assert plain.backoff_base == defaults["base"].default == 1.0
    assert plain.backoff_cap == defaults["cap"].default == 60.0


def test_csfabric_max_deliver_sets_the_consumer_bound(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CSFABRIC_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("CSFABRIC_MAX_DELIVER", "3")
    assert ConsumerOptions.from_settings(FabricSettings()).max_deliver == 3
    assert ConsumerOptions.from_settings(FabricSettings(), max_deliver=7).max_deliver == 7
    assert ConsumerOptions().max_deliver == 5  # usable without settings, as before


@given(st.integers(1, 12))
def test_default_backoff_doubles_from_one_second(deliveries: int) -> None:
    expected = min(60.0, 2.0 ** (deliveries - 1))
    assert expected * 0.8 <= backoff(deliveries) <= expected * 1.2
