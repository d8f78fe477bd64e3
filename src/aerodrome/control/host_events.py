"""The host's events, read from its durable stream and recorded: exits go to `Machines.handle_exit`.

The cursor of the last event recorded is kept in the store, and the agent is told (`acknowledge`) only after,
so an event is never lost: a control plane that was down, or died mid-batch, reads again from its cursor (an
exit recorded twice is ignored the second time, as the machine has left `started` by then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

from aerodrome.control.machines import Machines
from aerodrome.core import HostAgent, HostEvent, HostEventKind, HostUnreachableError, Store

log = logging.getLogger("aerodrome.host_events")
WAIT = 5.0  # seconds a read of the stream waits for a new event before asking again
RETRY = 1.0  # after a read that failed (a host out of reach)


class HostEvents:
    def __init__(self, store: Store, agent: HostAgent, machines: Machines) -> None:
        self._store = store
        self._agent = agent
        self._machines = machines
        self._name = ""
        self._cursor = 0
        self._task: asyncio.Task[None] | None = None

    async def drain(self) -> None:
        """Record every event the host has now (exits while the control plane was down), before recovery."""
        self._name = (await self._agent.info()).name
        self._cursor = await self._store.agent_cursor(self._name)
        while await self._pass(wait=0.0):
            pass

    def start(self) -> None:
        if self._task is not None and not self._task.done():
            return  # following already (a host re-adopted keeps its reader)
        self._task = asyncio.get_running_loop().create_task(self._follow(), name="host events")

    async def _follow(self) -> None:
        while True:
            try:
                await self._pass(wait=WAIT)
            except asyncio.CancelledError:
                raise
            except HostUnreachableError:
                await asyncio.sleep(RETRY)  # the host is down: HostWatch says so, and re-adopts it when it is back
            except Exception:
                log.exception("could not read the host's events; retrying in %gs", RETRY)
                await asyncio.sleep(RETRY)

    async def _pass(self, *, wait: float) -> bool:
        """Record one batch; False when there was none."""
        events = await self._agent.events(self._cursor, wait=wait)
        if not events:
            return False
        by_machine: defaultdict[str, list[HostEvent]] = defaultdict(list)
        for event in events:
            by_machine[event.machine_id].append(event)
        # machines side by side (one may wait for its lock), each machine's events in their order
        await asyncio.gather(*(self._apply_all(batch) for batch in by_machine.values()))
        self._cursor = events[-1].cursor
        await self._store.set_agent_cursor(self._name, self._cursor)
        await self._agent.acknowledge(self._cursor)
        return True

    async def _apply_all(self, events: list[HostEvent]) -> None:
        for event in events:
            try:
                await self._apply(event)
            except Exception:
                log.exception("could not record event %d of machine %s", event.cursor, event.machine_id)

    async def _apply(self, event: HostEvent) -> None:
        if event.kind is HostEventKind.EXIT and event.exit is not None:
            await self._machines.handle_exit(event.machine_id, event.exit, event.version)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
