"""The listEvents poller's windows and watermark: where a poll starts and ends, which rows count."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any


def poll_start(
    now: datetime, watermark: datetime | None, *, horizon: float, overlap: float
) -> datetime:
    """Where a poll starts: a little before the watermark (rows with the watermark's second
    may still be arriving), never further back than the horizon (the seen-set's TTL)."""
    oldest = now - timedelta(seconds=horizon)
    if watermark is None:
        return oldest
    return max(oldest, watermark - timedelta(seconds=overlap))


def poll_end(now: datetime, settle: float) -> datetime:
    """Rows newer than this wait for the next poll, giving their webhook time to arrive."""
    return now - timedelta(seconds=settle)


def api_date(when: datetime) -> str:
    """``startdate``/``enddate`` as listEvents takes them (``yyyy-MM-dd HH:mm:ss``, UTC)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def row_time(row: Mapping[str, Any]) -> datetime | None:
    """A listEvents row's ``created`` (``yyyy-MM-dd'T'HH:mm:ssZ``) as a UTC instant."""
    created = row.get("created")
    if not isinstance(created, str):
        return None
    for pattern in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S %z"):
        try:
            return datetime.strptime(created, pattern).astimezone(UTC)
        except ValueError:
            continue
    return None


def rows_to_process(
    rows: Iterable[Mapping[str, Any]], end: datetime
) -> list[tuple[datetime, Mapping[str, Any]]]:
    """Rows with an id and a time up to ``end``, oldest first (listEvents lists newest
    first), so the watermark can advance row by row."""
    timed = []
    for row in rows:
        when = row_time(row)
        if when is not None and when <= end and isinstance(row.get("id"), str) and row["id"]:
            timed.append((when, row))
    timed.sort(key=lambda pair: pair[0])
    return timed


def next_watermark(current: datetime | None, processed: datetime | None) -> datetime | None:
    """The watermark never moves back (a late row within the overlap must not rewind it)."""
    if processed is None:
        return current
    return processed if current is None else max(current, processed)


def parse_watermark(raw: bytes | None) -> datetime | None:
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.decode())
    except (UnicodeDecodeError, ValueError):
        return None  # a damaged value: start again from the horizon (the seen-set dedupes)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
