"""Each host watched: its event stream followed, a cheap health call (`info`) every few seconds, and a host that
answers again re-adopted before it is shown reachable.

With hosts registered in the database, each host's heartbeat there is an input too: one older than `stale_after`
seconds makes its host unreachable for every replica alike, whatever a health call to it says (the agent may
answer one replica and not another; the database is what they share), until it heartbeats again.

Re-adopting a host is what the control plane's start does for every host, for that one alone: record the events
it made while out of reach (exits above all), then reconcile each of its machines with what it holds. Its
machines show `host_status: "unreachable"` until that is done, and the edge routes around them meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from aerodrome.control.host_events import HostEvents
from aerodrome.control.hosts import HostEntry, Hosts
from aerodrome.control.machines import Machines
from aerodrome.control.recovery import recover
from aerodrome.core import AerodromeError, Clock, Store, SystemClock

log = logging.getLogger("aerodrome.hosts")
HEALTH_INTERVAL = 2.0  # seconds between health calls to each host
Heartbeats = Callable[[], Awaitable[Mapping[str, float]]]  # host name → its last heartbeat, epoch seconds


class HostWatch:
    def __init__(
        self,
        store: Store,
        hosts: Hosts,
        machines: Machines,
        *,
        interval: float = HEALTH_INTERVAL,
        heartbeats: Heartbeats | None = None,
        stale_after: float = 3 * HEALTH_INTERVAL,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._hosts = hosts
        self._machines = machines
        self.interval = interval
        self._heartbeats = heartbeats
        self.stale_after = stale_after
        self._clock = clock or SystemClock()
        self._told: set[int] = set()  # hosts never reached whose failure was logged
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
            await self.check_all()

    async def check_all(self) -> None:
        """One pass: a host whose heartbeat is stale is unreachable without a call; each other gets a health call
        (hosts that joined since the last pass included)."""
        stale = await self._stale()
        for entry in list(self._hosts.entries):
            try:
                if entry.info is not None and entry.info.name in stale:
                    self._mark_stale(entry)
                    continue
                await self.check(entry)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not check host %s", entry.name)

    async def _stale(self) -> set[str]:
        """The hosts whose heartbeat in the database is too old (none when the database cannot say)."""
        if self._heartbeats is None:
            return set()
        try:
            beats = await self._heartbeats()
        except AerodromeError as exc:
            log.warning("could not read the hosts' heartbeats: %s", exc.message)
            return set()
        now = self._clock.now()
        return {name for name, at in beats.items() if now - at > self.stale_after}

    def _mark_stale(self, entry: HostEntry) -> None:
        if entry.reachable:
            log.warning("host %s is unreachable: no heartbeat for %.0f s", entry.name, self.stale_after)
        self._hosts.set_reachable(entry, False)

    async def check(self, entry: HostEntry) -> None:
        """One health call; a host that answers after being out of reach is re-adopted, then shown reachable."""
        try:
            await self._hosts.identify(entry)
        except AerodromeError as exc:
            if entry.reachable or entry.index not in self._told:  # a host never reached yet: said once
                self._told.add(entry.index)
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
        log.info("host %s is reachable; its machines are adopted", entry.name)

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
