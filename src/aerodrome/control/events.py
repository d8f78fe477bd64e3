"""Change notification for `wait`: one version counter per machine, and waiters woken on every change."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class ChangeFeed:
    """Wakes every coroutine waiting on a machine whenever that machine's row changes."""

    def __init__(self) -> None:
        self._events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def publish(self, machine_id: str) -> None:
        event = self._events.pop(machine_id, None)
        if event is not None:
            event.set()

    async def next_change(self, machine_id: str, timeout: float) -> bool:
        """Wait for the next change of `machine_id`; False if `timeout` seconds pass first."""
        event = self._events[machine_id]
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True
