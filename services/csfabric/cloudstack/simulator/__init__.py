"""An API-faithful CloudStack simulator: ``/client/api`` with CloudStack's shapes and errors.

Public surface: :class:`Simulator` (aiohttp app, ``dispatch`` as in-process transport),
:class:`World` (deterministic from a seed; ``World.demo(seed)`` for the demo world),
:class:`ApiError`, and the request-signing helpers.
"""

from .errors import ApiError
from .server import KEYS_FILE, Simulator
from .signing import canonical, signature, verify_request
from .world import World

__all__ = [
    "KEYS_FILE",
    "ApiError",
    "Simulator",
    "World",
    "canonical",
    "signature",
    "verify_request",
]
