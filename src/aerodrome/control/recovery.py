"""Bringing the database and the host back into agreement after a restart or a crash of the daemon.

Every operation writes its transient state (starting, stopping, replacing…) before it acts, so a machine
found in a transient state names the operation that was cut short; the runtime tells how far it got.

Finishing an operation may take a while (a stop waits out its timeout), so each machine is reconciled in the
background, holding its lock from the start: the API serves at once, and a request for a machine still being
reconciled waits for it.
"""

from __future__ import annotations

import asyncio
import logging

from aerodrome.control.machines import Machines
from aerodrome.core import Machine, MachineState, SandboxStatus, Store

S = MachineState
log = logging.getLogger("aerodrome.recovery")

_RUNNING = (SandboxStatus.RUNNING, SandboxStatus.PAUSED)


async def recover(machines: Machines, store: Store) -> None:
    statuses = await machines.runtime.recover()  # exits found meanwhile arrive through handle_exit
    live = await store.live_machines()
    known = {m.id for m in live}
    for machine_id in set(statuses) - known:
        log.warning("destroying sandbox %s, which no machine owns", machine_id)
        await machines.runtime.destroy(machine_id)
    await _release_orphaned_volumes(machines, store, known)
    for machine in live:
        lock = machines.lock_for(machine.id)
        await lock.acquire()  # uncontended: nothing else runs before start() returns
        machines.spawn(_reconcile(machines, store, machine, statuses.get(machine.id, SandboxStatus.ABSENT), lock))


async def _release_orphaned_volumes(machines: Machines, store: Store, live: set[str]) -> None:
    """Detach volumes reserved for a machine that was never recorded (a create cut short) or is gone."""
    for app in await store.list_apps(None):
        for volume in await store.list_volumes(app.name):
            if volume.attached_machine_id and volume.attached_machine_id not in live:
                log.warning("releasing volume %s of machine %s, which is gone", volume.id, volume.attached_machine_id)
                await machines.volumes.release(volume.id)


async def _reconcile(
    machines: Machines, store: Store, machine: Machine, status: SandboxStatus, lock: asyncio.Lock
) -> None:
    try:
        await _reconcile_locked(machines, store, machine, status)
    except Exception:
        log.exception("could not reconcile machine %s", machine.id)
    finally:
        lock.release()


async def _reconcile_locked(machines: Machines, store: Store, machine: Machine, status: SandboxStatus) -> None:
    current = await store.get_machine(machine.id)
    if current is None:
        return
    if current.state is S.DESTROYING:
        await machines.runtime.destroy(current.id)
        await machines.volumes.release_all(current.app_name, current.id)
        await machines.transition(current, S.DESTROYED, event=("destroy", "flyd"), deleted=True)
        return
    if status is SandboxStatus.FAILED:
        await _fail(machines, current)
        return
    if status is SandboxStatus.ABSENT or (current.state is S.REPLACING and status not in _RUNNING):
        # An update cut short may have left its new version on the host, unrecorded (it was not answered): the
        # host goes back to the version the database names.
        await machines.recreate_sandbox(current)
    if status in _RUNNING and current.state in (S.STARTING, S.RESTARTING, S.STARTED):
        if current.state is not S.STARTED:
            await machines.transition(current, S.STARTED, event=("start", "flyd"))
        return
    if status is SandboxStatus.PAUSED and current.state in (S.SUSPENDING, S.SUSPENDED):
        if current.state is S.SUSPENDING:
            await machines.transition(current, S.SUSPENDED, event=("suspend", "flyd"))
        return
    if status in _RUNNING:  # running, though the database says it should not be: finish the stop
        spec = machines.spec_of(current)
        await machines.runtime.stop(current.id, spec.stop_signal, spec.stop_timeout)
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
