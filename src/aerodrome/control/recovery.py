"""Bringing the database and the host back into agreement after a restart or a crash of the daemon.

Every operation writes its transient state (starting, stopping, replacing…) before it acts, so a machine
found in a transient state names the operation that was cut short; its host tells how far it got: the state it
holds the machine in and the version it holds. A host holding another version than the row's (an update cut
short after its new version was prepared, and so never answered) prepares the row's version again.

Finishing an operation may take a while (a stop waits out its timeout), so each machine is reconciled in the
background, holding its lock from the start: the API serves at once, and a request for a machine still being
reconciled waits for it.
"""

from __future__ import annotations

import asyncio
import logging

from aerodrome.control.hosts import HostEntry
from aerodrome.control.machine_base import host_deadline, new_key
from aerodrome.control.machines import Machines
from aerodrome.core import HostMachine, HostState, Machine, MachineState, Store

S = MachineState
log = logging.getLogger("aerodrome.recovery")

_RUNNING = (HostState.RUNNING, HostState.PAUSED)


async def recover(machines: Machines, store: Store, only: HostEntry | None = None) -> None:
    """Reconcile the machines of every host that answers, or of `only` (a host that answers again). Those of a
    host out of reach are left as they are: they are re-adopted when it answers."""
    hosts = machines.hosts
    held = {m.machine_id: m for m in await (hosts.machines_on(only) if only else hosts.machines())}
    live = await store.live_machines()
    known = {m.id for m in live}
    for machine_id in set(held) - known:
        log.warning("destroying sandbox %s, which no machine owns", machine_id)
        await machines.agent.destroy(machine_id, key=new_key(), deadline=host_deadline())
    await _release_orphaned_volumes(machines, store, known)
    if only is not None:
        live = [m for m in live if hosts.entry(m.host) is only]
    else:
        live = [m for m in live if hosts.reachable(m.host)]
    for machine in live:
        lock = machines.lock_for(machine.id)
        await lock.acquire()  # uncontended: nothing else runs before start() returns
        host = held.get(machine.id) or HostMachine(machine.id, HostState.ABSENT)
        machines.spawn(_reconcile(machines, store, machine, host, lock))


async def _release_orphaned_volumes(machines: Machines, store: Store, live: set[str]) -> None:
    """Detach volumes reserved for a machine that was never recorded (a create cut short) or is gone."""
    for app in await store.list_apps(None):
        for volume in await store.list_volumes(app.name):
            if volume.attached_machine_id and volume.attached_machine_id not in live:
                log.warning("releasing volume %s of machine %s, which is gone", volume.id, volume.attached_machine_id)
                await machines.volumes.release(volume.id)


async def _reconcile(machines: Machines, store: Store, machine: Machine, host: HostMachine, lock: asyncio.Lock) -> None:
    try:
        await _reconcile_locked(machines, store, machine, host)
    except Exception:
        log.exception("could not reconcile machine %s", machine.id)
    finally:
        lock.release()


async def _reconcile_locked(machines: Machines, store: Store, machine: Machine, host: HostMachine) -> None:
    current = await store.get_machine(machine.id)
    if current is None:
        return
    if current.state is S.DESTROYING:
        await machines.agent.destroy(current.id, key=new_key(), deadline=host_deadline())
        await machines.volumes.release_all(current.app_name, current.id)
        await machines.transition(current, S.DESTROYED, event=("destroy", "flyd"), deleted=True)
        return
    if host.state is HostState.FAILED:
        await _fail(machines, current)
        return
    state = host.state
    if state is HostState.ABSENT or (host.version != current.instance_id and state not in _RUNNING):
        # The host lost the machine, or holds a version the database does not name (an update cut short, not
        # answered): the host goes back to the version the database names.
        await machines.recreate_sandbox(current)
        state = HostState.CREATED
    if state in _RUNNING and current.state in (S.STARTING, S.RESTARTING, S.STARTED):
        if current.state is not S.STARTED:
            await machines.transition(current, S.STARTED, event=("start", "flyd"))
        return
    if state is HostState.PAUSED and current.state in (S.SUSPENDING, S.SUSPENDED):
        if current.state is S.SUSPENDING:
            await machines.transition(current, S.SUSPENDED, event=("suspend", "flyd"))
        return
    if state in _RUNNING:  # running, though the database says it should not be: finish the stop
        await machines.halt(current)
    if current.state not in (S.CREATED, S.STOPPED, S.FAILED):
        await machines.transition(current, S.STOPPED, event=("exit", "flyd"))


async def _fail(machines: Machines, machine: Machine) -> None:
    """The host lost its record of the machine (it did not read; the runtime set it aside and ended whatever of
    the machine ran): the machine is `failed`, as Fly shows a machine its host could not keep, with an event that
    says why. Its sandbox is then made again from the database's config, so that a start brings it back."""
    request = {"error": "the host's record of this machine was unreadable and was set aside; start it again"}
    machine = await machines.transition(machine, S.FAILED, event=("exit", "flyd"), request=request)
    try:
        await machines.recreate_sandbox(machine)
    except Exception:
        log.exception("could not prepare machine %s again; it stays failed until updated or destroyed", machine.id)
