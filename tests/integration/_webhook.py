"""An in-test webhook receiver, shared by the simulator's feed tests (fixture ``hook``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Hook:
    """Records every delivery; answers the scripted ``statuses`` first, then ``status``."""

    statuses: list[int] = field(default_factory=list)
    status: int = 200
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    delay: float = 0.0
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(
            status=self.statuses.pop(0) if self.statuses else self.status, text="ok"
        )


__all__ = ["Hook"]
