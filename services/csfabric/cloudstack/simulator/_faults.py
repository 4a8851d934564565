"""Fault injection for the simulator: error rate and code, added latency, throttling.

A :class:`FaultPlan` holds one :class:`Fault` per command (or ``"*"`` for every command
without its own).  The server awaits :meth:`FaultPlan.before` ahead of each dispatch, so
a fault looks to a client exactly like CloudStack misbehaving: the error shape and HTTP
status are the server's usual ones.  Time comes from the kernel clock, so latency and
throttling windows follow scaled and stepped time like everything else; the dice come
from a seeded RNG, so a run with a seed injects the same sequence of failures.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from csfabric.cloudstack.simulator._errors import ApiError
from csfabric.kernel import Clock, ConfigError, RealClock

WILDCARD = "*"
THROTTLE_CODE = 429  # ApiErrorCode.API_LIMIT_EXCEED
# ApiErrorCode → the exception CloudStack raises for it and that class's cserrorcode
# (CSExceptionErrorCode); the texts are the simulator's own, CloudStack's vary per call
# site.  A code not listed gets the generic internal error's text and ServerApiException's.
_TEXTS: dict[int, tuple[str, int]] = {
    530: ("Internal error executing command, please contact your system administrator", 9999),
    533: ("Insufficient capacity to complete the operation (injected fault)", 4325),
    534: ("Resource unavailable (injected fault)", 4380),
    535: ("Resource allocation failed (injected fault)", 4370),
    536: ("Resource is in use (injected fault)", 4375),
    537: ("Network rule conflict (injected fault)", 4360),
}
_THROTTLE_TEXT = "The given user has reached his/her account api limit, please retry after [{}] ms."


@dataclass(frozen=True)
class Fault:
    """What happens to one command: added ``latency`` (fabric seconds), then an error with
    probability ``error_rate``; more than ``throttle_per_second`` calls get 429 at once."""

    command: str = WILDCARD
    error_rate: float = 0.0
    errorcode: int = 530
    latency: float = 0.0
    throttle_per_second: float | None = None

    def __post_init__(self) -> None:
        if not self.command:
            raise ConfigError("a fault needs a command name (or '*')")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ConfigError(f"error_rate must be within 0..1, got {self.error_rate}")
        if not 400 <= self.errorcode <= 599:
            raise ConfigError(f"errorcode must be an HTTP error status, got {self.errorcode}")
        if self.latency < 0:
            raise ConfigError(f"latency must be >= 0, got {self.latency}")
        if self.throttle_per_second is not None and self.throttle_per_second <= 0:
            raise ConfigError(f"throttle_per_second must be > 0, got {self.throttle_per_second}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Bucket:
    """A token bucket over fabric time: ``rate`` calls per second, bursts up to ``rate``."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate, self.capacity = rate, max(1.0, rate)
        self.tokens, self.at = self.capacity, now

    def take(self, now: float) -> float:
        """0 when a call may pass, else the seconds until one may."""
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = max(self.at, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class FaultPlan:
    """The faults in force; changed at run time through the admin endpoint or CLI flags."""

    def __init__(self, clock: Clock | None = None, *, seed: int | None = None) -> None:
        self.clock = clock or RealClock()
        self._rng = random.Random(seed)
        self._faults: dict[str, Fault] = {}
        self._buckets: dict[str, _Bucket] = {}
        self.injected: dict[str, int] = {}  # "<command>:<code>" → count, for the admin view

    def set(
        self,
        command: str,
        *,
        error_rate: float = 0.0,
        errorcode: int = 530,
        latency: float = 0.0,
        throttle_per_second: float | None = None,
        seed: int | None = None,
    ) -> Fault:
        """Replace the fault of ``command`` (case-insensitive, like the API's lookup)."""
        fault = Fault(command, error_rate, errorcode, latency, throttle_per_second)
        key = _key(command)
        self._faults[key] = fault
        self._buckets.pop(key, None)  # a new rate starts with a full bucket
        if seed is not None:
            self._rng.seed(seed)
        return fault

    def apply(self, spec: Mapping[str, Any]) -> Fault:
        """:meth:`set` from a JSON object (the admin endpoint's body)."""
        known = {"command", "error_rate", "errorcode", "latency", "throttle_per_second", "seed"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ConfigError(f"unknown fault field(s): {', '.join(unknown)}")
        try:
            rate = spec.get("throttle_per_second")
            seed = spec.get("seed")
            return self.set(
                str(spec.get("command") or WILDCARD),
                error_rate=float(spec.get("error_rate", 0.0)),
                errorcode=int(spec.get("errorcode", 530)),
                latency=float(spec.get("latency", 0.0)),
                throttle_per_second=None if rate is None else float(rate),
                seed=None if seed is None else int(seed),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"bad fault: {exc}") from None

    def clear(self, command: str | None = None) -> int:
        """Drop the fault of ``command``, or all of them; returns how many were dropped."""
        if command is None:
            dropped = len(self._faults)
            self._faults.clear()
            self._buckets.clear()
            return dropped
        self._buckets.pop(_key(command), None)
        return 1 if self._faults.pop(_key(command), None) is not None else 0

    @property
    def faults(self) -> list[Fault]:
        return list(self._faults.values())

    def fault_for(self, command: str) -> Fault | None:
        return self._faults.get(_key(command)) or self._faults.get(WILDCARD)

    async def before(self, command: str) -> None:
        """Throttle, then sleep the latency, then maybe fail: the order a slow, flaky API has."""
        fault = self.fault_for(command)
        if fault is None:
            return
        key = _key(fault.command)
        if fault.throttle_per_second is not None:
            now = self.clock.now().timestamp()
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(fault.throttle_per_second, now)
            wait = bucket.take(now)
            if wait > 0:
                self._count(command, THROTTLE_CODE)
                raise ApiError(THROTTLE_CODE, _THROTTLE_TEXT.format(round(wait * 1000)), 9999)
        if fault.latency > 0:
            await self.clock.sleep(fault.latency)
        if fault.error_rate > 0 and self._rng.random() < fault.error_rate:
            self._count(command, fault.errorcode)
            text, cserrorcode = _TEXTS.get(fault.errorcode, _TEXTS[530])
            raise ApiError(fault.errorcode, text, cserrorcode)

    def _count(self, command: str, code: int) -> None:
        name = f"{command}:{code}"
        self.injected[name] = self.injected.get(name, 0) + 1


def _key(command: str) -> str:
    return command.strip().lower()


def parse_fault(spec: str) -> dict[str, Any]:
    """``CMD:RATE[:CODE]`` (``--fault listZones:0.5:530``) as :meth:`FaultPlan.apply` takes."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise ConfigError(f"--fault wants COMMAND:RATE[:CODE], got {spec!r}")
    try:
        fault: dict[str, Any] = {"command": parts[0], "error_rate": float(parts[1])}
        if len(parts) == 3:
            fault["errorcode"] = int(parts[2])
    except ValueError:
        raise ConfigError(f"--fault wants COMMAND:RATE[:CODE], got {spec!r}") from None
    return fault


def parse_latency(spec: str) -> dict[str, Any]:
    """``CMD:SECONDS`` (``--latency deployVirtualMachine:2``)."""
    command, _, seconds = spec.rpartition(":")
    try:
        return {"command": command or WILDCARD, "latency": float(seconds)}
    except ValueError:
        raise ConfigError(f"--latency wants COMMAND:SECONDS, got {spec!r}") from None


def parse_throttle(spec: str) -> dict[str, Any]:
    """``CMD:PER_SECOND`` (``--throttle '*:50'``)."""
    command, _, rate = spec.rpartition(":")
    try:
        return {"command": command or WILDCARD, "throttle_per_second": float(rate)}
    except ValueError:
        raise ConfigError(f"--throttle wants COMMAND:PER_SECOND, got {spec!r}") from None


def merge_specs(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Combine flags naming the same command (``--fault X:… --latency X:…``) into one fault."""
    merged: dict[str, dict[str, Any]] = {}
    for spec in specs:
        merged.setdefault(_key(spec["command"]), {}).update(spec)
    return list(merged.values())


__all__ = [
    "THROTTLE_CODE",
    "WILDCARD",
    "Fault",
    "FaultPlan",
    "merge_specs",
    "parse_fault",
    "parse_latency",
    "parse_throttle",
]
