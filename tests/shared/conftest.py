"""Every test here takes ``backbone`` (or ``bus``, one bus on it) from ``tests/conftest.py``,
so it runs twice: ``[memory]`` on the in-memory double, ``[nats]`` on a fresh nats-server.
Select one side with ``-m memory`` or ``-m integration``.
"""

from __future__ import annotations

import pytest_asyncio
from csfabric.kernel.bus import Bus

from tests.backbone import Backbone


@pytest_asyncio.fixture
async def bus(backbone: Backbone) -> Bus:
    return await backbone.bus()
