"""Each host watched: its event stream followed, a cheap health call (`info`) every few seconds, and a host that
answers again re-adopted before it is shown reachable.

Re-adopting a host is what the control plane's start does for every host, for that one alone: record the events
it made while out of reach (exits above all), then reconcile each of its machines with what it holds. Its
machines show `host_status: "unreachable"` until that is done, and the edge routes around them meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aerodrome.control.host_events import HostEvents
from aerodrome.control.hosts import HostEntry, Hosts
from aerodrome.control.machines import Machines
from aerodrome.control.recovery import recover
from aerodrome.core import AerodromeError, Store

log = logging.getLogger("aerodrome.hosts")
HEALTH_INTERVAL = 2.0  # seconds between health calls to each host


class HostWatch:
    def __init__(self, store: Store, hosts: Hosts, machines: Machines, *, interval: float = HEALTH_INTERVAL) -> None:
        self._store = store
        self._hosts = hosts
        self._machines = machines
        self.interval = interval
        self._events: dict[int, HostEvents] = {}  # by the entry's index
        self._task: asyncio.Task[None] | None = None

    async def adopt_all(self) -> None:
        """At start: every host that answers has its missed events recorded, then its machines reconciled."""
        reached = [e for e in self._hosts.entries if e.reachable]
        for entry in reached:
            await self._events_of(entry).drain()
        await recover(self._machines, self._store)
        for entry in reached:
            self._events_of(entry).start()
        for entry in self._hosts.entries:
            if not entry.reachable:
                log.warning("host %s is unreachable; its machines are re-adopted when it answers", entry.name)

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._watch(), name="host health")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for entry in self._hosts.entries:
                try:
                    await self.check(entry)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("could not check host %s", entry.name)

    async def check(self, entry: HostEntry) -> None:
        """One health call; a host that answers after being out of reach is re-adopted, then shown reachable."""
        try:
            await self._hosts.identify(entry)
        except AerodromeError as exc:
            if entry.reachable:
                log.warning("host %s is unreachable: %s", entry.name, exc.message)
            self._hosts.set_reachable(entry, False)
            return
        if entry.reachable:
            return
        log.info("host %s answers again; re-adopting its machines", entry.name)
        events = self._events_of(entry)
        await events.drain()
        await recover(self._machines, self._store, only=entry)
        events.start()
        self._hosts.set_reachable(entry, True)

    def _events_of(self, entry: HostEntry) -> HostEvents:
        if entry.index not in self._events:
            self._events[entry.index] = HostEvents(self._store, entry.agent, self._machines)
        return self._events[entry.index]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for events in self._events.values():
            await events.close()
