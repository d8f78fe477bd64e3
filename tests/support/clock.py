"""`ManualClock`: a `core.clock.Clock` that moves only when a test says, so timing is asserted without sleeping."""

from __future__ import annotations


class ManualClock:
    def __init__(self, now: float = 1_700_000_000.0, monotonic: float = 1000.0) -> None:
        self._now = now
        self._monotonic = monotonic

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both clocks forward, as real time would."""
        assert seconds >= 0, "time runs forward"
        self._now += seconds
        self._monotonic += seconds
