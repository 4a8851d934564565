"""Ingest's webhook receiver against hostile clients, over real sockets (items 7, 13).

Slowloris connections (a header byte a second, or a body byte a second) are closed within
the receiver's read timeouts, and a flood of forged 1 MB requests while NATS is away is
answered 401 at once, holding only what the requests in flight need.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest

from tests.integration.test_ingest_webhook import (
    delivery_headers,
    ingest_settings,
    running_ingest,
    sign,
    vm_create,
)
from tests.servers import NatsServerProcess

pytestmark = pytest.mark.integration

HEADER_TIMEOUT = 2.0
READ_TIMEOUT = 2.0
MARGIN = 3.0  # the server's timer granularity and a busy 2-core machine


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def closed_within(port: int, first: bytes, drip: bytes, seconds: float) -> tuple[bool, bytes]:
    """Send ``first``, then one byte of ``drip`` a second; whether the server closed the
    connection within ``seconds``, and what it answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = b""
    try:
        writer.write(first)
        await writer.drain()

        async def dripping() -> None:
            for byte in drip:
                await asyncio.sleep(1.0)
                writer.write(bytes([byte]))
                await writer.drain()

        async def until_closed() -> None:
            nonlocal answer
            while chunk := await reader.read(4096):
                answer += chunk

        sender = asyncio.create_task(dripping())
        try:
            async with asyncio.timeout(seconds):
                with contextlib.suppress(ConnectionError):
                    await until_closed()
            return True, answer
        except TimeoutError:
            return False, answer
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
    finally:
        writer.close()


async def test_slowloris_headers_are_closed_within_the_header_timeout(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    settings = ingest_settings(tmp_path, webhook_header_timeout=HEADER_TIMEOUT)
    first = b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    drip = b"X-Slow: " + b"a" * 60
    async with running_ingest(nats_server.url, tmp_path, settings) as (_, ingest):
        port = ingest.webhook.port
        results = await asyncio.gather(
            *(closed_within(port, first, drip, HEADER_TIMEOUT + MARGIN) for _ in range(400))
        )
        # The receiver still serves real deliveries after the flood.
        body = vm_create()
        async with (
            aiohttp.ClientSession() as http,
            http.post(ingest.webhook.url, data=body, headers=delivery_headers(body)) as resp,
        ):
            assert resp.status == 200
    still_open = sum(1 for closed, _ in results if not closed)
    assert still_open == 0, f"{still_open} of 400 slowloris connections still open"


async def test_a_body_sent_a_byte_a_second_is_408_and_closed(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    settings = ingest_settings(tmp_path, webhook_read_timeout=READ_TIMEOUT)
    body = vm_create()
    head = (
        b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Content-Length: {len(body)}\r\nX-CS-Signature: {sign(body)}\r\n\r\n".encode()
    )
    async with running_ingest(nats_server.url, tmp_path, settings) as (_, ingest):
        closed, answer = await closed_within(
            ingest.webhook.port,
            head,
            body,
            READ_TIMEOUT + 2.0 + MARGIN,  # + lingering
        )
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert closed


async def test_forged_1mb_requests_while_nats_is_away_are_401_at_once(
    nats_server: NatsServerProcess, tmp_path: Path
) -> None:
    settings = ingest_settings(tmp_path)
    body = b"{" + b" " * (settings.webhook_max_bytes - 2) + b"}"
    forged = {"X-CS-Signature": sign(body, "not-the-secret"), "User-Agent": "u" * 8000}
    loop = asyncio.get_running_loop()
    rounds: list[tuple[float, float, float, list[int]]] = []  # seconds, peak, after, statuses
    async with running_ingest(nats_server.url, tmp_path, settings) as (_, ingest):
        nats_server.kill()
        before = rss_mb()
        peak = before

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_mb())
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:

            async def one() -> int:
                async with http.post(ingest.webhook.url, data=body, headers=forged) as resp:
                    return resp.status

            for _ in range(3):  # a repeated flood must not grow memory round by round
                began = loop.time()
                statuses = await asyncio.gather(*(one() for _ in range(100)))
                rounds.append((loop.time() - began, peak, rss_mb(), statuses))
        sampler.cancel()
        print(
            f"100 forged 1 MB requests x3, NATS away: RSS {before:.0f} MB before; per round"
            + "".join(f" [{t:.2f}s, peak {p:.0f} MB, after {a:.0f} MB]" for t, p, a, _ in rounds)
        )
        for took, _, _, statuses in rounds:
            assert statuses == [401] * 100
            # The 401 waits for nothing (it waited for 12 audit publish retries before): well
            # within webhook_timeout, the bound of every other answer.
            assert took < settings.webhook_timeout
        # Bounded: what one flood needs (100 bodies in flight) is reused, not kept per request.
        assert rounds[-1][1] < rounds[0][1] + 50, rounds
        # One count for one source and reason, not 300 records queued.
        assert len(ingest.webhook.rejections) == 1
        await nats_server.start()
