"""Token buckets, keyed by (action, identifier), as Fly limits its Machines API."""

from __future__ import annotations

from dataclasses import dataclass

from aerodrome.core.clock import Clock
from aerodrome.core.errors import RateLimitedError


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float  # tokens per second
    burst: int


#: Fly: 1 req/s per action per machine, burst 3; get machine 5 req/s, burst 10.
DEFAULT_LIMITS: dict[str, Limit] = {"default": Limit(1.0, 3), "get": Limit(5.0, 10)}


class RateLimiter:
    def __init__(self, clock: Clock, limits: dict[str, Limit] | None = None, *, enabled: bool = True) -> None:
        self._clock = clock
        self._limits = limits or DEFAULT_LIMITS
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, last refill)
        self.enabled = enabled

    def check(self, action: str, identifier: str) -> None:
        """Take one token or raise RateLimitedError with the wait until the next one."""
        if not self.enabled:
            return
        limit = self._limits.get(action, self._limits["default"])
        now = self._clock.monotonic()
        tokens, last = self._buckets.get((action, identifier), (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - last) * limit.rate)
        if tokens < 1.0:
            self._buckets[(action, identifier)] = (tokens, now)
            raise RateLimitedError(
                f"rate limit exceeded for {action} on {identifier}", retry_after=(1.0 - tokens) / limit.rate
            )
        self._buckets[(action, identifier)] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # forget idle keys rather than grow without bound
            self._buckets.clear()
