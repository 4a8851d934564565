"""Ingest's pure rules: webhook checks, poll windows, watermarks and seen-set keys."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from csfabric.cloudstack import NativeMessage, parse_native
from csfabric.cloudstack.simulator._feeds import webhook_signature as simulator_signature
from csfabric.events import ActionEventData, parse_as
from csfabric.ingest.logic import (
    EVIDENCE_LIMIT,
    OTHER_SOURCE,
    WEBHOOK_STATUS,
    Rejection,
    RejectTally,
    action_fingerprint,
    api_date,
    check_request,
    check_signature,
    dlq_msg_id,
    evidence_text,
    next_watermark,
    parse_watermark,
    poll_end,
    poll_start,
    pushed_fingerprint,
    reject_audit_key,
    row_fingerprint,
    row_time,
    rows_to_process,
    seen_key,
    usable_header,
    webhook_signature,
)

NOW = datetime(2024, 11, 28, 12, 0, 0, tzinfo=UTC)
SECRET = b"s3cret"
BODY = b'{"event":"VM.CREATE","status":"Completed"}'


def test_only_post_and_declared_sizes_within_the_limit_pass() -> None:
    assert check_request("POST", 10, 100) is None
    assert check_request("POST", None, 100) is None  # chunked: the read enforces the limit
    assert check_request("POST", 100, 100) is None
    too_big = check_request("POST", 101, 100)
    assert too_big is not None
    assert too_big.status == 413
    for method in ("GET", "PUT", "DELETE", "HEAD"):
        refused = check_request(method, 0, 100)
        assert refused is not None
        assert refused.status == 405


def test_signature_matches_cloudstacks_and_the_simulators() -> None:
    signature = webhook_signature(SECRET, BODY)
    assert signature == simulator_signature(SECRET.decode(), BODY)
    assert check_signature(SECRET, BODY, signature) is None
    assert check_signature(None, BODY, None) is None  # no secret configured: not checked


@pytest.mark.parametrize(
    "signature",
    [None, "", "bm9wZQ==", webhook_signature(b"other", BODY), webhook_signature(SECRET, b"x")],
)
def test_missing_or_forged_signature_is_401_without_quoting_it(signature: str | None) -> None:
    refused = check_signature(SECRET, BODY, signature)
    assert refused is not None
    assert refused.status == 401
    assert SECRET.decode() not in refused.reason
    if signature:
        assert signature not in refused.reason


def test_every_outcome_is_answered_200() -> None:
    assert set(WEBHOOK_STATUS.values()) == {200}
    assert set(WEBHOOK_STATUS) == {"stored", "duplicate", "test", "dead-lettered"}


# Every shape of a bad X-CS-Signature: aiohttp hands non-UTF-8 header bytes on as
# surrogate escapes, which made ``.encode()`` raise (a 500) before.
MALFORMED = [
    "\udcff\udcfe",  # b"\xff\xfe" as aiohttp decodes it
    "é" * 44,
    "not base64 at all!",
    "bm9wZQ==",  # base64, but 4 bytes
    base64.b64encode(b"x" * 31).decode(),
    base64.b64encode(b"x" * 33).decode(),
    "A" * 10_000,
]


@pytest.mark.parametrize("signature", MALFORMED)
def test_a_malformed_signature_is_401_never_an_exception(signature: str) -> None:
    refused = check_signature(SECRET, BODY, signature)
    assert refused is not None
    assert refused.status == 401
    assert refused.kind == "malformed-signature"
    assert signature not in refused.reason


def test_rejections_are_classified() -> None:
    missing = check_signature(SECRET, BODY, "  ")
    wrong = check_signature(SECRET, BODY, webhook_signature(b"other", BODY))
    assert missing is not None
    assert missing.kind == "missing-signature"
    assert wrong is not None
    assert wrong.kind == "bad-signature"
    assert check_signature(SECRET, BODY, " " + webhook_signature(SECRET, BODY) + " ") is None


def test_unusable_header_values_are_dropped() -> None:
    uuid_ = "0d1f3f5e-1b7c-4f0e-9d55-2f0a7e4b9c11"
    assert usable_header("X-CS-Event-ID", uuid_)
    assert not usable_header("X-CS-Event-ID", "\udcff" + uuid_)  # non-UTF-8 bytes
    assert not usable_header("x-cs-event-id", "a" * 129)
    assert not usable_header("X-CS-Event-ID", "  ")
    assert not usable_header("X-CS-Event-ID", "ü")
    assert usable_header("User-Agent", "CS-Hookshot/ü")
    assert not usable_header("User-Agent", "\udc80")


def test_evidence_is_bounded_and_printable() -> None:
    assert evidence_text("CS-Hookshot/1") == "CS-Hookshot/1"
    assert evidence_text(None) == ""
    long = evidence_text("u" * 8192)
    assert long.startswith("u" * EVIDENCE_LIMIT)
    assert len(long) < EVIDENCE_LIMIT + 40
    assert "8192" in long
    evidence_text("\udcff").encode("utf-8")  # a surrogate never reaches an encoder


FORGED = Rejection(401, "X-CS-Signature does not match the body", "bad-signature")
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_rejections_are_counted_per_source_and_window_not_per_body() -> None:
    tally = RejectTally(60, max_sources=10)
    for i in range(1000):  # 1000 distinct forged bodies from one sender, within a minute
        tally.add(T0 + timedelta(seconds=i * 0.05), "10.0.0.1", FORGED, 1000 + i, {})
    tally.add(T0 + timedelta(seconds=1), "10.0.0.2", FORGED, 5, {"user_agent": "x" * 8192})
    assert len(tally) == 2
    assert tally.due(T0 + timedelta(seconds=59)) == []  # the window is still open
    first, second = tally.due(T0 + timedelta(seconds=60))
    assert (first.source, first.count) == ("10.0.0.1", 1000)
    assert first.bytes == sum(1000 + i for i in range(1000))
    assert (first.start, first.end) == (T0, T0 + timedelta(seconds=60))
    assert len(second.evidence["user_agent"]) < EVIDENCE_LIMIT + 40
    tally.done(first)
    assert tally.pending() == [second]
    tally.add(T0 + timedelta(seconds=61), "10.0.0.1", FORGED, 1, {})
    assert [e.count for e in tally.pending()] == [1, 1]  # a new window, a new count
    assert tally.window_end(T0 + timedelta(seconds=61)) == T0 + timedelta(seconds=120)


def test_sources_and_waiting_windows_are_bounded() -> None:
    tally = RejectTally(60, max_sources=3, max_windows=5)
    for i in range(50):
        tally.add(T0, f"10.0.0.{i}", FORGED, 1, {})
    entries = tally.pending()
    assert [e.source for e in entries].count(OTHER_SOURCE) == 1
    assert sum(e.count for e in entries) == 50
    assert len(entries) == 4
    for minute in range(1, 100):  # the audit stream away for 100 minutes: nothing flushed
        tally.add(T0 + timedelta(minutes=minute), "10.0.0.1", FORGED, 1, {})
    entries = tally.pending()
    assert len(entries) <= 5 * 4
    assert sum(e.count for e in entries) == 149  # merged, never dropped
    assert min(e.start for e in entries) == T0


def test_audit_and_dlq_keys_are_stable_and_distinct() -> None:
    tally = RejectTally(60)
    tally.add(T0, "1.2.3.4", FORGED, 1, {})
    tally.add(T0, "5.6.7.8", FORGED, 1, {})
    a, b = tally.pending()
    assert reject_audit_key("host-1", a) == reject_audit_key("host-1", a)
    assert reject_audit_key("host-1", a) != reject_audit_key("host-1", b)
    assert reject_audit_key("host-1", a) != reject_audit_key("host-2", a)  # replicas
    assert dlq_msg_id(BODY) == dlq_msg_id(BODY)
    assert dlq_msg_id(BODY).startswith("dlq:ingest:")
    assert dlq_msg_id(BODY) != dlq_msg_id(BODY + b" ")


def test_first_poll_starts_at_the_horizon_then_just_before_the_watermark() -> None:
    assert poll_start(NOW, None, horizon=3600, overlap=5) == NOW - timedelta(hours=1)
    mark = NOW - timedelta(minutes=2)
    assert poll_start(NOW, mark, horizon=3600, overlap=5) == mark - timedelta(seconds=5)
    # A watermark older than the horizon: the seen-set no longer covers it, start there.
    old = NOW - timedelta(days=3)
    assert poll_start(NOW, old, horizon=3600, overlap=5) == NOW - timedelta(hours=1)
    assert poll_end(NOW, 30) == NOW - timedelta(seconds=30)


def test_api_date_is_utc_in_listevents_format() -> None:
    plus_one = timezone(timedelta(hours=1))
    assert api_date(datetime(2024, 11, 28, 10, 15, 7, tzinfo=plus_one)) == "2024-11-28 09:15:07"


def test_rows_are_timed_filtered_and_oldest_first() -> None:
    rows = [
        {"id": "c", "created": "2024-11-28T12:00:00+0000"},
        {"id": "a", "created": "2024-11-28T11:00:00+0100"},  # 10:00 UTC
        {"id": "b", "created": "2024-11-28T10:30:00+0000"},
        {"id": "", "created": "2024-11-28T10:30:00+0000"},
        {"id": "x", "created": "yesterday"},
        {"id": "y"},
    ]
    picked = rows_to_process(rows, NOW - timedelta(seconds=1))
    assert [row["id"] for _, row in picked] == ["a", "b"]
    assert picked[0][0] == datetime(2024, 11, 28, 10, 0, tzinfo=UTC)
    assert row_time({"created": "2024-11-28 09:15:00 +0100"}) == datetime(
        2024, 11, 28, 8, 15, tzinfo=UTC
    )


def test_watermark_never_moves_back_and_survives_damage() -> None:
    assert next_watermark(None, None) is None
    assert next_watermark(None, NOW) == NOW
    assert next_watermark(NOW, NOW - timedelta(seconds=3)) == NOW
    assert next_watermark(NOW, NOW + timedelta(seconds=3)) == NOW + timedelta(seconds=3)
    assert parse_watermark(NOW.isoformat().encode()) == NOW
    assert parse_watermark(b"2024-11-28T12:00:00") == NOW  # naive: read as UTC
    assert parse_watermark(b"garbage") is None
    assert parse_watermark(b"\xff") is None
    assert parse_watermark(None) is None


def test_a_row_and_its_native_body_share_a_fingerprint() -> None:
    vm = "5b7a7c1e-8f0b-4a43-a2f4-0c5bd3d0e5a1"
    row = {
        "id": "0d1f",
        "type": "VM.CREATE",
        "state": "Completed",
        "description": "Successfully completed deploying Vm",
        "created": "2024-11-28T10:15:00+0100",
        "resourceid": vm,
    }
    native = {
        "event": "VM.CREATE",
        "status": "Completed",
        "description": "Successfully completed deploying Vm",
        "entityuuid": vm,
        "eventDateTime": "2024-11-28 09:15:00 +0000",
    }
    when = datetime(2024, 11, 28, 9, 15, tzinfo=UTC)
    data = parse_native(NativeMessage(json.dumps(native).encode(), "kafka"), source="test")
    assert data is not None
    typed = parse_as(ActionEventData, data)
    assert row_fingerprint(row) == pushed_fingerprint(typed, when)
    other_status = typed.model_copy(update={"status": "Started"})
    assert pushed_fingerprint(other_status, when) != row_fingerprint(row)
    assert pushed_fingerprint(typed, None) is None
    assert row_fingerprint({"type": "VM.CREATE"}) is None
    fp = action_fingerprint("E", "Completed", None, when, "d")
    assert fp.startswith("fp.")
    assert seen_key(fp) is None


def test_seen_keys_are_uuids_only() -> None:
    assert (
        seen_key("0d1f3f5e-1b7c-4f0e-9d55-2f0a7e4b9c11") == "0d1f3f5e-1b7c-4f0e-9d55-2f0a7e4b9c11"
    )
    for bad in ("", "a b", "a.b", "a*", "ü"):
        assert seen_key(bad) is None


def test_an_empty_webhook_secret_file_is_an_error_not_unsigned(tmp_path: Path) -> None:
    from csfabric.ingest.settings import IngestSettings
    from csfabric.kernel import ConfigError

    secret = tmp_path / "secret"
    secret.write_text("  \n")
    settings = IngestSettings(webhook_secret_file=secret)
    with pytest.raises(ConfigError, match="is empty"):
        settings.webhook_secret()
    secret.write_text("s3cret\n")
    assert settings.webhook_secret() == b"s3cret"
