"""Reaching NATS from a command: connect once (fail fast), mask passwords for output."""

from __future__ import annotations

import asyncio
import re

import nats
from nats.aio.client import Client

from csfabric.kernel import ConfigError, StreamLimits
from csfabric.kernel.bus import ensure_streams

_USERINFO = re.compile(r"(?P<scheme>\w+://)(?P<user>[^:/@\s,]*)(?P<password>:[^@\s,]*)?@")


def mask_url(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (for output; dev.json keeps it)."""

    def hide(match: re.Match[str]) -> str:
        # user:password keeps the user; a lone userinfo is a token and goes entirely.
        user = match["user"] if match["password"] else ""
        return f"{match['scheme']}{user}{':' if user else ''}***@"

    return _USERINFO.sub(hide, url)


async def connect_once(url: str, timeout: float = 2.0) -> Client:  # noqa: ASYNC109
    """Connect without retrying forever (unlike Bus.connect): a wrong URL should fail fast.

    Raises :class:`ConfigError` naming the last connection error, with the URL masked.
    """
    errors: list[Exception] = []

    async def remember(exc: Exception) -> None:
        errors.append(exc)

    servers = [u.strip() for u in url.split(",") if u.strip()]
    try:
        # nats-py tries each server at least twice before giving up (it only drops a
        # server once its attempts exceed max_reconnect_attempts, and 0 means never).
        return await asyncio.wait_for(
            nats.connect(
                servers,
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.05,
                connect_timeout=timeout,
                error_cb=remember,
                name="csfabric-cli",
            ),
            timeout * 2,
        )
    except Exception as exc:
        last = errors[-1] if errors else exc
        reason = str(last) or type(last).__name__
        raise ConfigError(f"cannot reach NATS at {mask_url(url)}: {reason}") from None


async def ensure_streams_at(url: str) -> dict[str, str]:
    nc = await connect_once(url)
    try:
        return await ensure_streams(nc.jetstream(timeout=5.0), StreamLimits())
    finally:
        await nc.close()


__all__ = ["connect_once", "ensure_streams_at", "mask_url"]
