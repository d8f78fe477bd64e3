"""Standby machines (`config.standbys`: the machines one stands by for). A standby is not routed to by the edge
(see `is_standby`); when a machine it stands by for is lost (it fails, or its program ends without anyone asking it
to stop) the control plane starts it, as Fly starts a standby when the machine it covers is lost. A stop someone
asked for is not a loss: the standby stays as it is."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aerodrome.control.events import ChangeFeed
from aerodrome.control.machines import Machines
from aerodrome.core import AerodromeError, MachineState, Store

log = logging.getLogger("aerodrome.standbys")

DOWN = (MachineState.STOPPED, MachineState.FAILED)
RESTING = (MachineState.CREATED, MachineState.STOPPED)


def is_standby(config: Mapping[str, Any]) -> bool:
    return bool(config.get("standbys"))


class Standbys:
    """Listens to the change feed: a change to a machine that is now down starts its app's resting standbys."""

    def __init__(self, store: Store, machines: Machines, feed: ChangeFeed) -> None:
        self._store = store
        self._machines = machines
        self._tasks: set[asyncio.Task[list[str]]] = set()
        feed.subscribe(self._changed)

    def _changed(self, machine_id: str, app_name: str) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self.cover(app_name, machine_id))
        except RuntimeError:  # no loop: a change published outside the daemon's (recovery in a test)
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cover(self, app_name: str, machine_id: str) -> list[str]:
        """Start the standbys of `machine_id` if it is down; returns the ids started."""
        machine = await self._store.get_machine(machine_id)
        if machine is None or machine.state not in DOWN or not await self._lost(machine_id, machine.state):
            return []
        app = await self._store.get_app(app_name)
        if app is None or app.destroying:
            return []
        started = []
        for standby in await self._store.list_machines(app_name, states=RESTING):
            if machine_id not in (standby.config.get("standbys") or []):
                continue
            try:
                await self._machines.start(app, standby.id, None, source="flyd")
            except AerodromeError as exc:  # already starting, or the host refused: nothing more to do here
                log.warning("standby %s for %s did not start: %s", standby.id, machine_id, exc)
                continue
            log.info("standby %s started: machine %s is %s", standby.id, machine_id, machine.state.value)
            started.append(standby.id)
        return started

    async def _lost(self, machine_id: str, state: MachineState) -> bool:
        """Failed, or stopped by its own exit (the newest event is the exit the host reported)."""
        if state is MachineState.FAILED:
            return True
        newest = await self._store.list_events(machine_id, limit=1)
        return bool(newest) and newest[0].type == "exit"

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
