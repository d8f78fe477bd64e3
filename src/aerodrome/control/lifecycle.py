"""Running machines: start, stop, suspend, restart, signals, exits and restart policies, and `wait`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Collection, Coroutine
from typing import Any

from aerodrome.control.machine_base import MachineBase, host_deadline, new_key
from aerodrome.control.volumes import Volumes
from aerodrome.core import (
    Action,
    App,
    ExecResult,
    ExitInfo,
    HostUnreachableError,
    InvalidArgumentError,
    Machine,
    MachineSpec,
    MachineState,
    ProcessInfo,
    WaitTimeoutError,
    check_action,
    fault_point,
    normalize_config,
    restart_backoff,
    should_restart,
    signal_name,
)

S = MachineState


class Lifecycle(MachineBase):
    volumes: Volumes

    def spec_of(self, machine: Machine) -> MachineSpec:
        return normalize_config(machine.config)[1]

    async def start(self, app: App, mid: str, nonce: str | None, *, source: str = "user") -> MachineState:
        """Start a created or stopped machine, or resume a suspended one. Returns the state it was in.

        `source="flyd"` is the platform acting on its own (the edge's autostart): leases bind users only.
        """
        async with self.locked(mid):
            machine = await self.find(app, mid)
            if source == "user":
                self.check_lease(machine, nonce)
            check_action(Action.START, machine.state)
            previous = machine.state
            machine = await self.transition(machine, S.STARTING)
            fault_point("machine.start.starting")
            try:
                await self.unless_unreachable(machine, previous, self._run(machine))  # or resume it, when suspended
                fault_point("machine.start.runtime_started")
            except HostUnreachableError:
                raise
            except Exception:
                await self.transition(
                    machine, S.FAILED if previous is S.CREATED else S.STOPPED, event=("start", source)
                )
                raise
            await self.transition(machine, S.STARTED, event=("start", source))
            fault_point("machine.start.recorded")
            return previous

    async def stop(
        self,
        app: App,
        mid: str,
        nonce: str | None,
        *,
        signal: int | None = None,
        timeout: float | None = None,
        source: str = "user",
    ) -> None:
        async with self.locked(mid):
            machine = await self.find(app, mid)
            if source == "user":
                self.check_lease(machine, nonce)
            check_action(Action.STOP, machine.state)
            if machine.state in (S.STOPPED, S.CREATED):
                return  # already at rest: stop is idempotent, as flyctl expects
            await self._stop_locked(machine, signal, timeout, source=source)

    async def _stop_locked(
        self, machine: Machine, signal: int | None, timeout: float | None, *, source: str
    ) -> Machine:
        previous = machine.state
        machine = await self.transition(machine, S.STOPPING)
        fault_point("machine.stop.stopping")
        # a suspended one is thawed first, on the host
        exit = await self.unless_unreachable(machine, previous, self.halt(machine, signal, timeout))
        fault_point("machine.stop.runtime_stopped")
        request = _exit_request(exit, machine) if exit is not None else None
        machine = await self.transition(machine, S.STOPPED, event=("stop", source), request=request)
        fault_point("machine.stop.recorded")
        return machine

    async def suspend(self, app: App, mid: str, nonce: str | None, *, source: str = "user") -> None:
        async with self.locked(mid):
            machine = await self.find(app, mid)
            if source == "user":
                self.check_lease(machine, nonce)
            check_action(Action.SUSPEND, machine.state)
            previous = machine.state
            machine = await self.transition(machine, S.SUSPENDING)
            fault_point("machine.suspend.suspending")
            suspended = self.agent.suspend(mid, key=new_key(), deadline=host_deadline())
            await self.unless_unreachable(machine, previous, suspended)
            fault_point("machine.suspend.runtime_frozen")
            await self.transition(machine, S.SUSPENDED, event=("suspend", source))
            fault_point("machine.suspend.recorded")

    async def restart(
        self, app: App, mid: str, nonce: str | None, *, signal: int | None = None, timeout: float | None = None
    ) -> None:
        async with self.locked(mid):
            machine = await self.find(app, mid)
            self.check_lease(machine, nonce)
            check_action(Action.RESTART, machine.state)
            if machine.state is S.STARTED:
                machine = await self.transition(machine, S.RESTARTING)
                await self.unless_unreachable(machine, S.STARTED, self.halt(machine, signal, timeout))
            await self._run(machine)
            await self.transition(machine, S.STARTED, event=("restart", "user"))

    async def signal(self, app: App, mid: str, signal: int) -> None:
        machine = await self.find(app, mid)
        check_action(Action.SIGNAL, machine.state)
        await self.agent.signal(mid, signal, deadline=host_deadline())

    async def exec(
        self, app: App, mid: str, command: list[str], stdin: bytes | None, timeout: float, container: str = ""
    ) -> ExecResult:
        machine = await self.find(app, mid)
        check_action(Action.EXEC, machine.state)
        deadline = host_deadline(timeout)
        return await self.agent.exec(mid, command, stdin, timeout, deadline=deadline, container=container)

    async def ps(self, app: App, mid: str) -> list[ProcessInfo]:
        machine = await self.find(app, mid)
        check_action(Action.EXEC, machine.state)
        return await self.agent.ps(mid)

    async def memory(self, app: App, mid: str) -> tuple[int, int]:
        """(limit, available) in MiB."""
        machine = await self.find(app, mid)
        limit = self.spec_of(machine).memory_mb
        used = await self.agent.memory_usage(mid)
        return limit, max(0, limit - used // (1024 * 1024))

    async def reclaim_memory(self, app: App, mid: str, amount_mb: object) -> int:
        """Fly's balloon reclaim, for a container: returns the MiB given back."""
        if isinstance(amount_mb, bool) or not isinstance(amount_mb, int) or not 0 < amount_mb <= 256 * 1024:
            raise InvalidArgumentError("invalid amount_mb: must be a number of MiB between 1 and 262144")
        machine = await self.find(app, mid)
        check_action(Action.EXEC, machine.state)
        return await self.agent.reclaim_memory(mid, amount_mb, deadline=host_deadline()) // (1024 * 1024)

    async def set_memory(self, app: App, mid: str, limit_mb: object, nonce: str | None) -> tuple[int, int]:
        """Change `guest.memory_mb` in place (no new version), live when the machine runs."""
        if isinstance(limit_mb, bool) or not isinstance(limit_mb, int) or limit_mb < 256 or limit_mb % 256:
            raise InvalidArgumentError("invalid limit_mb: must be a multiple of 256, at least 256")
        async with self.locked(mid):
            machine = await self.find(app, mid)
            self.check_lease(machine, nonce)
            config = {**machine.config, "guest": {**machine.config.get("guest", {}), "memory_mb": limit_mb}}
            normalize_config(config)  # the new size must still make a valid config
            await self.agent.set_memory(mid, limit_mb, deadline=host_deadline())
            await self.store.save_machine(dataclasses.replace(machine, config=config))
            self.feed.publish(mid, app.name)
        return await self.memory(app, mid)

    async def set_cordoned(self, app: App, mid: str, cordoned: bool, nonce: str | None) -> None:
        async with self.locked(mid):
            machine = await self.find(app, mid)
            self.check_lease(machine, nonce)
            await self.transition(machine, machine.state, cordoned=cordoned)

    async def wait(
        self,
        app: App,
        mid: str,
        states: Collection[str],
        *,
        version: str | None,
        from_event_id: str | None,
        timeout: float,
    ) -> tuple[Machine, str | None]:
        """Block until the machine is in one of `states` (or an event after `from_event_id` reached one)."""
        unknown = set(states) - {s.value for s in S} - {"settled"}
        if unknown:
            raise InvalidArgumentError(f"invalid state(s) to wait for: {', '.join(sorted(unknown))}")
        deadline = self.clock.monotonic() + timeout
        while True:
            change = self.feed.watch(mid)  # before the read: a change landing during it still wakes this wait
            machine = await self.find(app, mid, include_deleted=True)
            matched = await self._wait_matches(machine, states, version, from_event_id)
            if matched is not None:
                return machine, matched or None
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(
                    f"timeout waiting for machine {mid} to be {' or '.join(states)} (it is {machine.state.value})"
                )
            await self.feed.until(change, remaining)

    async def _wait_matches(
        self, machine: Machine, states: Collection[str], version: str | None, from_event_id: str | None
    ) -> str | None:
        """The matching event id ("" when matched by the current state), or None when not yet matched."""

        def wanted(state: str) -> bool:
            return state in states or ("settled" in states and S(state).is_settled)

        if from_event_id:
            events = await self.store.list_events(machine.id, limit=50)
            for event in reversed(events):
                if event.id > from_event_id and wanted(event.status):
                    return event.id
            return None
        if version and machine.instance_id != version and machine.state is not S.DESTROYED:
            return None
        return "" if wanted(machine.state.value) else None

    # the host's side of starts and stops

    async def _run(self, machine: Machine) -> None:
        """Run the machine's version on its host (which first grows the volumes extended while in use), or
        resume it when suspended."""
        await self.agent.start(machine.id, machine.instance_id, key=new_key(), deadline=host_deadline())
        await self.volumes.started(machine.app_name, machine.id)

    async def halt(self, machine: Machine, signal: int | None = None, timeout: float | None = None) -> ExitInfo | None:
        spec = self.spec_of(machine)
        wait = spec.stop_timeout if timeout is None else timeout
        return await self.agent.stop(
            machine.id, signal=signal or spec.stop_signal, timeout=wait, key=new_key(), deadline=host_deadline(wait)
        )

    # exits of main processes, reported by the host

    async def handle_exit(self, mid: str, exit: ExitInfo, version: str = "") -> None:
        """An exit the host reported of `version` of the machine ("": whichever it runs)."""
        if exit.requested_stop:
            return  # the stop, restart or update that asked for it records the outcome
        async with self.locked(mid):
            machine = await self.store.get_machine(mid)
            if machine is None or machine.deleted or machine.state is not S.STARTED:
                return
            if version and version != machine.instance_id:
                return  # an exit of a version the machine has left since
            spec = self.spec_of(machine)
            restarting = should_restart(spec.restart_policy, spec.restart_max_retries, exit, machine.restart_count)
            request = _exit_request(exit, machine, restarting=restarting)
            state = S.STARTING if restarting else S.STOPPED
            machine = await self.transition(machine, state, event=("exit", "flyd"), request=request)
        if restarting:
            self._schedule_restart(machine, restart_backoff(machine.restart_count))
        elif spec.auto_destroy:
            await self._auto_destroy(machine)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background, kept referenced until done and cancelled on close."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _schedule_restart(self, machine: Machine, delay: float) -> None:
        self.spawn(self._restart_after(machine.id, delay))

    async def _restart_after(self, mid: str, delay: float) -> None:
        await self.clock.sleep(delay)
        async with self.locked(mid):
            machine = await self.store.get_machine(mid)
            if machine is None or machine.state is not S.STARTING:
                return
            try:
                await self._run(machine)
            except Exception:
                await self.transition(machine, S.FAILED, event=("start", "flyd"))
                return
            await self.transition(machine, S.STARTED, event=("start", "flyd"), restart_count=machine.restart_count + 1)

    async def _auto_destroy(self, machine: Machine) -> None:
        async with self.locked(machine.id):
            current = await self.store.get_machine(machine.id)
            if current is None or current.state is not S.STOPPED:
                return
            await self.agent.destroy(machine.id, key=new_key(), deadline=host_deadline())
            await self.transition(current, S.DESTROYED, event=("destroy", "flyd"), deleted=True)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _exit_request(exit: ExitInfo, machine: Machine, *, restarting: bool = False) -> dict[str, object]:
    return {
        "exit_event": {
            "exit_code": exit.exit_code,
            "guest_exit_code": exit.exit_code,
            "guest_signal": exit.signal,
            "oom_killed": exit.oom_killed,
            "requested_stop": exit.requested_stop,
            "restarting": restarting,
            "signal": exit.signal,
            "signal_name": signal_name(exit.signal) if exit.signal > 0 else "",
            "exited_at": exit.exited_at,
        },
        "restart_count": machine.restart_count,
    }
