"""The edge's port into the control plane (`MachinePower`): starts and stops on the platform's own account.

A start is made once across replicas: its compare-and-set of the machine row (stopped → starting) is the claim.
The replica that loses it (a 412, or the machine found starting already) waits through the change feed for the
machine to come to rest, and starts it itself only when it came to rest stopped (the winner's start failed, or
the conflict was some other change).
"""

from __future__ import annotations

from aerodrome.control.machines import Machines
from aerodrome.core import App, FailedPreconditionError, Machine, MachineSpec, MachineState, NotFoundError, Store

#: What a start that lost the claim waits for (the edge's own start timeout bounds the whole), and how often it
#: tries again when the machine came to rest stopped instead.
AT_REST = ("started", "stopped", "suspended", "failed", "destroyed")
START_WAIT = 300.0
START_ATTEMPTS = 3


class EdgePower:
    def __init__(self, store: Store, machines: Machines) -> None:
        self._store = store
        self._machines = machines

    def reachable(self, host: str) -> bool:
        return self._machines.hosts.reachable(host)

    def on_private_network(self, host: str) -> bool:
        return self._machines.hosts.on_private_network(host)

    def spec_of(self, machine: Machine) -> MachineSpec:
        return self._machines.spec_of(machine)

    async def start(self, app: str, machine_id: str) -> None:
        record = await self._app(app)
        for attempt in range(START_ATTEMPTS):
            try:
                await self._machines.start(record, machine_id, None, source="flyd")
                return
            except FailedPreconditionError:
                machine, _ = await self._machines.wait(
                    record, machine_id, AT_REST, version=None, from_event_id=None, timeout=START_WAIT
                )
                if machine.state is MachineState.STARTED:
                    return
                if attempt == START_ATTEMPTS - 1:
                    raise

    async def stop(self, app: str, machine_id: str, suspend: bool) -> None:
        record = await self._app(app)
        if suspend:
            await self._machines.suspend(record, machine_id, None, source="flyd")
        else:
            await self._machines.stop(record, machine_id, None, source="flyd")

    async def _app(self, name: str) -> App:
        app = await self._store.get_app(name)
        if app is None or app.destroying:
            raise NotFoundError(f"app {name!r} not found")
        return app
