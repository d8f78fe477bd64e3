"""Token buckets, keyed by (action, identifier), as Fly limits its Machines API."""

from __future__ import annotations

from dataclasses import dataclass

from aerodrome.core.clock import Clock
from aerodrome.core.errors import RateLimitedError
from aerodrome.core.replication import SharedBuckets


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float  # tokens per second
    burst: int


#: Fly: 1 req/s per action per machine, burst 3; get machine 5 req/s, burst 10.
DEFAULT_LIMITS: dict[str, Limit] = {"default": Limit(1.0, 3), "get": Limit(5.0, 10)}


class RateLimiter:
    """In memory for one process; with `shared` (replicas of one PostgreSQL database) the buckets are the
    database's, so every replica takes from the same one."""

    def __init__(
        self,
        clock: Clock,
        limits: dict[str, Limit] | None = None,
        *,
        enabled: bool = True,
        shared: SharedBuckets | None = None,
    ) -> None:
        self._clock = clock
        self._limits = limits or DEFAULT_LIMITS
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._shared = shared
        self.enabled = enabled

    async def check(self, action: str, identifier: str) -> None:
        """Take one token or raise RateLimitedError with the wait until the next one."""
        if not self.enabled:
            return
        limit = self._limits.get(action, self._limits["default"])
        if self._shared is not None:
            wait = await self._shared.take(f"{action}/{identifier}", limit.rate, limit.burst)
        else:
            wait = self._take(limit, action, identifier)
        if wait is not None:
            raise RateLimitedError(f"rate limit exceeded for {action} on {identifier}", retry_after=wait)

    def _take(self, limit: Limit, action: str, identifier: str) -> float | None:
        now = self._clock.monotonic()
        tokens, last = self._buckets.get((action, identifier), (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - last) * limit.rate)
        if tokens < 1.0:
            self._buckets[(action, identifier)] = (tokens, now)
            return (1.0 - tokens) / limit.rate
        self._buckets[(action, identifier)] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # forget idle keys rather than grow without bound
            self._buckets.clear()
        return None
