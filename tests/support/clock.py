"""`ManualClock`: a `core.clock.Clock` that moves only when a test says, so timing is asserted without sleeping."""

from __future__ import annotations

import asyncio


class ManualClock:
    def __init__(self, now: float = 1_700_000_000.0, monotonic: float = 1000.0) -> None:
        self._now = now
        self._monotonic = monotonic
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []  # (monotonic deadline, woken then)

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    @property
    def sleepers(self) -> int:
        """How many `sleep` calls are waiting for the clock to move."""
        return sum(not future.done() for _, future in self._sleepers)

    async def sleep(self, seconds: float) -> None:
        """Return once `advance` has moved the clock `seconds` on (at once for none)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._monotonic + seconds, future))
        await future

    def advance(self, seconds: float) -> None:
        """Move both clocks forward, as real time would, and wake the sleepers whose time has come."""
        assert seconds >= 0, "time runs forward"
        self._now += seconds
        self._monotonic += seconds
        due = [future for deadline, future in self._sleepers if deadline <= self._monotonic]
        self._sleepers = [(deadline, future) for deadline, future in self._sleepers if deadline > self._monotonic]
        for future in due:
            if not future.done():
                future.set_result(None)
