"""What replication keeps in KV bucket ``csfabric_dr``: open breaches and copy lag.

``breaches.<policy>``: the volumes over their RPO, each with since when and why, so a
restarted (or newly elected) replica neither alerts a breach twice nor forgets to send its
recovery.  ``lag.<policy>``: the newest copy-lag observations (seconds from a snapshot's
creation to its copy complete in the DR zone), which ``csfabric policy apply`` reads for the
p95 in its worst-case RPO warning.  Writes happen on the lease holder, fenced by the caller.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from csfabric.replication.logic import Lag, OpenBreach

BUCKET = "csfabric_dr"


def breaches_key(policy: str) -> str:
    return f"breaches.{policy}"


def lag_key(policy: str) -> str:
    return f"lag.{policy}"


async def _get(kv: KeyValue, key: str) -> Any:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return None if not entry.value else json.loads(entry.value)


async def copy_times(kv: KeyValue, policy: str) -> list[timedelta]:
    """The copy lags observed so far for ``policy`` (empty when none was)."""
    body = await _get(kv, lag_key(policy)) or {}
    return [timedelta(seconds=float(s["lag_s"])) for s in body.get("samples", [])]


class DrState:
    """The bucket, read and written for one service instance."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def breaches(self, policy: str) -> dict[str, OpenBreach]:
        body = await _get(self.kv, breaches_key(policy)) or {}
        return {
            vol: OpenBreach(datetime.fromisoformat(b["since"]), str(b["cause"]))
            for vol, b in body.items()
        }

    async def save_breaches(self, policy: str, breaches: dict[str, OpenBreach]) -> None:
        body = {v: {"since": b.since.isoformat(), "cause": b.cause} for v, b in breaches.items()}
        await self.kv.put(breaches_key(policy), json.dumps(body, sort_keys=True).encode())

    async def recorded_lags(self, policy: str) -> set[tuple[str, str]]:
        body = await _get(self.kv, lag_key(policy)) or {}
        return {(s["snapshot"], s["zone"]) for s in body.get("samples", [])}

    async def add_lags(self, policy: str, lags: list[Lag], at: datetime, keep: int) -> None:
        body = await _get(self.kv, lag_key(policy)) or {}
        samples = list(body.get("samples", []))
        samples.extend(
            {"snapshot": g.snapshot_id, "zone": g.zone_id, "lag_s": g.seconds, "at": at.isoformat()}
            for g in lags
        )
        body["samples"] = samples[-keep:]
        await self.kv.put(lag_key(policy), json.dumps(body).encode())


__all__ = ["BUCKET", "DrState", "breaches_key", "copy_times", "lag_key"]
