"""Change notification for `wait`: one version counter per machine, and waiters woken on every change."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable


class ChangeFeed:
    """Wakes every coroutine waiting on a machine whenever that machine's row changes."""

    def __init__(self) -> None:
        self._events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._listeners: list[Callable[[str, str], None]] = []

    def subscribe(self, listener: Callable[[str, str], None]) -> None:
        """Call `listener(machine_id, app_name)` after every change (the edge drops what it cached about the app)."""
        self._listeners.append(listener)

    def publish(self, machine_id: str, app_name: str) -> None:
        event = self._events.pop(machine_id, None)
        if event is not None:
            event.set()
        for listener in self._listeners:
            listener(machine_id, app_name)

    async def next_change(self, machine_id: str, timeout: float) -> bool:
        """Wait for the next change of `machine_id`; False if `timeout` seconds pass first."""
        event = self._events[machine_id]
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True
