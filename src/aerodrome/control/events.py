"""Change notification: `wait`'s wake-ups, and the listeners (the edge, logs, standbys) told of every change.

Changes made by this process are told to its listeners at once, and to the other replicas through the relay
(PostgreSQL's LISTEN/NOTIFY); theirs come back through it and are told the same way. Without a relay (SQLite,
one process) the feed stays in memory.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

from aerodrome.core import MACHINE, Change, ChangeRelay

MachineListener = Callable[[str, str], None]  # (machine id, app name)
AppListener = Callable[[Change], None]  # an app's hostnames or dedicated addresses changed
ResetListener = Callable[[], None]  # changes may have been missed: read everything again


class ChangeFeed:
    """Wakes every coroutine waiting on a machine whenever that machine's row changes, on any replica."""

    def __init__(self, relay: ChangeRelay | None = None) -> None:
        self._relay = relay
        self._events: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._listeners: list[MachineListener] = []
        self._app_listeners: list[AppListener] = []
        self._reset_listeners: list[ResetListener] = []

    def subscribe(self, listener: MachineListener) -> None:
        """Call `listener(machine_id, app_name)` after every change (the edge drops what it cached about the app)."""
        self._listeners.append(listener)

    def subscribe_apps(self, listener: AppListener, reset: ResetListener | None = None) -> None:
        """Call `listener(change)` after a change of an app's hostnames or addresses; `reset()` after a gap."""
        self._app_listeners.append(listener)
        if reset is not None:
            self._reset_listeners.append(reset)

    def subscribe_reset(self, listener: ResetListener) -> None:
        self._reset_listeners.append(listener)

    async def start(self) -> None:
        if self._relay is not None:
            await self._relay.start(self._arrived)

    async def close(self) -> None:
        if self._relay is not None:
            await self._relay.close()

    def publish(self, machine_id: str, app_name: str) -> None:
        self._machine_changed(machine_id, app_name)
        if self._relay is not None:
            self._relay.send(Change(MACHINE, machine_id, app_name))

    def publish_app(self, kind: str, app_name: str) -> None:
        """This replica changed an app's hostnames or addresses (and told its own edge already)."""
        if self._relay is not None:
            self._relay.send(Change(kind, app_name, app_name))

    def watch(self, machine_id: str) -> asyncio.Event:
        """What the next change of `machine_id` sets: taken before reading the machine, then awaited."""
        return self._events[machine_id]

    async def next_change(self, machine_id: str, timeout: float) -> bool:
        """Wait for the next change of `machine_id`; False if `timeout` seconds pass first."""
        return await self.until(self._events[machine_id], timeout)

    async def until(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait for a change `watch` returned; False if `timeout` seconds pass first."""
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _machine_changed(self, machine_id: str, app_name: str) -> None:
        event = self._events.pop(machine_id, None)
        if event is not None:
            event.set()
        for listener in self._listeners:
            listener(machine_id, app_name)

    def _arrived(self, change: Change | None) -> None:
        """A change another replica made (None: some may have been missed while the relay was cut off)."""
        if change is None:
            self._reset()
        elif change.kind == MACHINE:
            self._machine_changed(change.key, change.app)
        else:
            for listener in self._app_listeners:
                listener(change)

    def _reset(self) -> None:
        events, self._events = self._events, defaultdict(asyncio.Event)
        for event in events.values():
            event.set()  # every `wait` reads its machine again
        for listener in self._reset_listeners:
            listener()
