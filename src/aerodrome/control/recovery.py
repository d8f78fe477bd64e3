"""Bringing the database and the host back into agreement after a restart or a crash of the daemon.

Every operation writes its transient state (starting, stopping, replacing…) before it acts, so a machine
found in a transient state names the operation that was cut short; its host tells how far it got: the state it
holds the machine in and the version it holds. The host carries its own half of an operation to its end (the
agent's step runner resumes it when it starts), so what is left here is the database's half. An update writes
the version it makes before the host is asked for it, so a host is never ahead of its row: one still holding
the old version (an update cut short before its new one was prepared) prepares the version the row names.

Finishing an operation may take a while (a stop waits out its timeout), so each machine is reconciled in the
background, holding its lock from the start: the API serves at once, and a request for a machine still being
reconciled waits for it.
"""

from __future__ import annotations

import asyncio
import logging

from aerodrome.control.hosts import HostEntry
from aerodrome.control.machine_base import HOST_DEADLINE, host_deadline, new_key
from aerodrome.control.machines import Machines
from aerodrome.core import HostMachine, HostState, Machine, MachineState, Store

S = MachineState
log = logging.getLogger("aerodrome.recovery")

_RUNNING = (HostState.RUNNING, HostState.PAUSED)
SETTLE_POLL = 0.1  # how often a machine whose agent is finishing an operation is looked at again


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
        # Uncontended at start (nothing else runs before start() returns); a host that answers again is
        # re-adopted while the API serves, so the host's state is read again once the lock is held.
        await lock.acquire()
        host = held.get(machine.id) or HostMachine(machine.id, HostState.ABSENT)
        machines.spawn(_reconcile(machines, store, machine, host, lock, fresh=only is not None))


async def _release_orphaned_volumes(machines: Machines, store: Store, live: set[str]) -> None:
    """Detach volumes reserved for a machine that was never recorded (a create cut short) or is gone."""
    for app in await store.list_apps(None):
        for volume in await store.list_volumes(app.name):
            if volume.attached_machine_id and volume.attached_machine_id not in live:
                log.warning("releasing volume %s of machine %s, which is gone", volume.id, volume.attached_machine_id)
                await machines.volumes.release(volume.id)


async def _reconcile(
    machines: Machines, store: Store, machine: Machine, host: HostMachine, lock: asyncio.Lock, *, fresh: bool
) -> None:
    try:
        if fresh:
            host = await machines.agent.status(machine.id)
        await _reconcile_locked(machines, store, machine, host)
    except Exception:
        log.exception("could not reconcile machine %s", machine.id)
    finally:
        lock.release()


async def _reconcile_locked(machines: Machines, store: Store, machine: Machine, host: HostMachine) -> None:
    current = await store.get_machine(machine.id)
    if current is None or current.deleted or current.state is S.DESTROYED:
        return  # destroyed meanwhile (a request held the lock first): nothing of it is to be made again
    host = await _settled(machines, host)
    if current.state is S.DESTROYING:
        await machines.agent.destroy(current.id, key=new_key(), deadline=host_deadline())
        await machines.volumes.release_all(current.app_name, current.id)
        await machines.transition(current, S.DESTROYED, event=("destroy", "flyd"), deleted=True)
        return
    if host.state is HostState.FAILED:
        await _fail(machines, current)
        return
    state = host.state
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
    if state is HostState.ABSENT or host.version != current.instance_id:
        # The host lost the machine, or is behind the database (an update cut short before the host prepared
        # its version): the host makes the version the database names.
        await machines.recreate_sandbox(current)
    if current.state is S.REPLACING:  # the update's new version is on the host now: it is the machine's
        versions = {v.version for v in await store.list_versions(current.id)}
        new_version = current.instance_id not in versions
        await machines.transition(current, S.STOPPED, event=("update", "flyd"), new_version=new_version)
    elif current.state not in (S.CREATED, S.STOPPED, S.FAILED):
        await machines.transition(current, S.STOPPED, event=("exit", "flyd"))


async def _settled(machines: Machines, host: HostMachine) -> HostMachine:
    """The machine as its host holds it once the operation its agent resumed at start (if any) has finished:
    the host's half of an operation cut short is the agent's to finish, this side reconciles with its end."""
    waited = 0.0
    while host.operation and waited < HOST_DEADLINE:
        await asyncio.sleep(SETTLE_POLL)
        waited += SETTLE_POLL
        host = await machines.agent.status(host.machine_id)
    return host


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
