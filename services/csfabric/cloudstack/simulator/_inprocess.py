"""The simulator as an in-process transport: an ``aiohttp.ClientSession`` stand-in.

``CloudStackClient(settings, session=in_process_session(sim))`` sends every request to
:meth:`Simulator.dispatch` in this process — signed, encoded and answered exactly as over
HTTP, without a socket — for tests and benchmarks that need many calls fast.  Only what
the client uses is here: ``get``/``post`` as async context managers, a response's
``status`` and ``read()``, and ``close()``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from yarl import URL

if TYPE_CHECKING:
    import aiohttp

    from csfabric.cloudstack.simulator._server import Simulator

# Called with each request's decoded parameters and the answer's HTTP status.
Observer = Callable[[Mapping[str, str], int], None]


class _Response:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self._body = body

    async def read(self) -> bytes:
        return self._body


class _Request:
    def __init__(self, session: InProcessSession, url: Any, data: Any) -> None:
        self.session, self.url, self.data = session, url, data

    async def __aenter__(self) -> _Response:
        url = self.url if isinstance(self.url, URL) else URL(str(self.url))
        raw: dict[str, str] = {}
        for key, value in url.query.items():
            raw.setdefault(key, value)
        if isinstance(self.data, Mapping):
            for key, value in self.data.items():
                raw.setdefault(str(key), str(value))
        status, body = await self.session.simulator.dispatch(raw)
        if self.session.observer is not None:
            self.session.observer(raw, status)
        return _Response(status, json.dumps(body).encode())

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None


class InProcessSession:
    """Requests answered by ``simulator.dispatch``; ``observer`` sees each one."""

    def __init__(self, simulator: Simulator, observer: Observer | None = None) -> None:
        self.simulator = simulator
        self.observer = observer
        self.closed = False

    def get(self, url: Any, **_: Any) -> _Request:
        return _Request(self, url, None)

    def post(self, url: Any, *, data: Any = None, **_: Any) -> _Request:
        return _Request(self, url, data)

    async def close(self) -> None:
        self.closed = True


def in_process_session(
    simulator: Simulator, observer: Observer | None = None
) -> aiohttp.ClientSession:
    """An in-process session typed as the client's ``session`` parameter wants it."""
    return cast("aiohttp.ClientSession", InProcessSession(simulator, observer))


__all__ = ["InProcessSession", "Observer", "in_process_session"]
