"""One watcher for the exits of every machine: a pidfd per container init, polled by the event loop.

The daemon is a child subreaper: `runc run -d` exits once the container runs, and the container's init becomes
the daemon's child, so its exit status is read from the pidfd itself (waitid(P_PIDFD)), a descriptor the
machine cannot touch. After a daemon restart the inits it adopts are no longer its children; a pidfd still
turns readable when they exit, so one mechanism covers both, and only the status of an exit that happened
while no daemon was its parent is unknown.

The same watcher bounds the machines' output files on disk: containers append to them directly, so a periodic
sweep frees all but their newest bytes (`output.bound_output`), read into the logs or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
from collections.abc import Callable
from pathlib import Path

from aerodrome.runtime.runc.output import OUTPUT_KEEP_BYTES, bound_output

PR_SET_CHILD_SUBREAPER = 36

LOG_SWEEP_SECONDS = 2.0


def _bound_all(logs: list[Path], keep: int) -> None:
    for log in logs:
        bound_output(log, keep)


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), which tells a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def become_subreaper() -> None:
    """Orphaned descendants (container inits once `runc run -d` exits) become this process's children."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def exit_code(pidfd: int) -> int | None:
    """The shell-style status (128+N for signal N) of the exited child behind `pidfd`, reaping it; None when
    it is not this process's child or has not exited."""
    try:
        result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        return None
    if result is None:
        return None
    if result.si_code == os.CLD_EXITED:
        return result.si_status
    return 128 + result.si_status  # killed or dumped


def reap_exited(pid: int, start_time: int | None) -> int | None:
    """The status of `pid` if it is an exited child of this process (the same process: same start time)."""
    if start_time is not None and process_start_time(pid) != start_time:
        return None
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    try:
        return exit_code(fd)
    finally:
        os.close(fd)


def reap_strays(seen: set[int]) -> set[int]:
    """Reap exited children that are nobody else's to wait for, and return the zombies left for next time.

    As a subreaper the daemon inherits every orphaned descendant: a process run into a machine (`runc exec`)
    whose runc died first, a tool's child whose tool was killed. Children in a machine's PID namespace are
    reaped at once (only runc waits for those, and it is gone); the daemon's own are reaped once they were
    already zombies at the previous sweep, seconds ago: asyncio waits for its subprocesses within
    milliseconds of their exit, so a zombie that old is an orphan.
    """
    still: set[int] = set()
    for pid in _children():
        fields = _status_fields(pid)
        if not fields.get("State", "").startswith("Z"):
            continue
        if len(fields.get("NSpid", "").split()) > 1 or pid in seen:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        else:
            still.add(pid)
    return still


def _status_fields(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _children() -> list[int]:
    found: list[int] = []
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/children") as f:
            found += [int(pid) for pid in f.read().split()]
    return found


class Supervisor:
    """Calls `on_exit(machine_id, exit_code)` once when a watched init exits; the code is None when unknown."""

    def __init__(self, on_exit: Callable[[str, int | None], None], *, log_cap: int = OUTPUT_KEEP_BYTES) -> None:
        self._on_exit = on_exit
        self._log_cap = log_cap
        self._fds: dict[str, int] = {}
        self._logs: dict[str, Path] = {}
        self._loop = asyncio.get_running_loop()
        self._sweeper = self._loop.create_task(self._sweep_logs())

    def watch(self, machine_id: str, pid: int, start_time: int | None, log: Path) -> None:
        """Watch `pid`; if it is already gone (or the pid now belongs to another process), report the exit now."""
        self.unwatch(machine_id)
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._loop.call_soon(self._on_exit, machine_id, None)
            return
        if start_time is not None and process_start_time(pid) != start_time:
            os.close(fd)
            self._loop.call_soon(self._on_exit, machine_id, None)
            return
        self._fds[machine_id] = fd
        self._logs[machine_id] = log
        self._loop.add_reader(fd, self._fired, machine_id)

    def unwatch(self, machine_id: str) -> None:
        fd = self._fds.pop(machine_id, None)
        self._logs.pop(machine_id, None)
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)

    def watching(self, machine_id: str) -> bool:
        return machine_id in self._fds

    def _fired(self, machine_id: str) -> None:
        fd = self._fds.get(machine_id)
        code = exit_code(fd) if fd is not None else None
        self.unwatch(machine_id)
        self._on_exit(machine_id, code)

    async def close(self) -> None:
        self._sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sweeper
        for machine_id in list(self._fds):
            self.unwatch(machine_id)

    async def _sweep_logs(self) -> None:
        zombies: set[int] = set()
        while True:
            await asyncio.sleep(LOG_SWEEP_SECONDS)
            await asyncio.to_thread(_bound_all, list(self._logs.values()), self._log_cap)
            zombies = reap_strays(zombies)
